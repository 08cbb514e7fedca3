# Thin wrappers around ./dev, which bootstraps everything itself.
.PHONY: demo test lint soak bench bench-exporter bench-restart bench-idle-cpu bench-autoscale bench-ctl-startup bench-memory-limit bench-isolation-spawn bench-web

demo:
	./dev demo
test:
	./dev test
lint:
	./dev lint
soak:
	./dev soak
bench:
	./dev bench
bench-exporter:
	./dev bench exporter
bench-restart:
	./dev bench restart
bench-idle-cpu:
	./dev bench idle-cpu
bench-autoscale:
	./dev bench autoscale
bench-web:
	./dev bench web
bench-ctl-startup:
	./dev bench ctl-startup
bench-memory-limit:
	./dev bench memory-limit
bench-isolation-spawn:
	./dev bench isolation-spawn
