"""Demo program that grows its memory until the controller's limit restarts it."""

import time

hoard = []
while True:
    hoard.append(bytearray(4 * 1024 * 1024))
    time.sleep(1)
