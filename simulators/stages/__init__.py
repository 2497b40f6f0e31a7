"""The stages of a simulated phone's run (boot, enrollment, firmware, redirect, provisioning), one
module each, composed into one run by `simulators.stages.run.Run`; the sequence is `simulators.phone`'s."""
