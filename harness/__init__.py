"""The harness: lab description, device-under-test drivers, observers, reports, the `enrollab` CLI."""
