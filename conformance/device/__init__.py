"""The device conformance suite: drives a device under test with the harness as its enrollment
server (`harness.scripted_des`) and file server, one module per Appendix A feature or group."""
