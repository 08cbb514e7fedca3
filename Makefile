# Thin wrappers around ./dev, which bootstraps everything itself.
.PHONY: demo test lint bench bench-exporter bench-restart bench-idle-cpu bench-autoscale bench-ctl-startup bench-web

demo:
	./dev demo
test:
	./dev test
lint:
	./dev lint
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
