"""One run of a phone's state machine: the stages composed (`simulators.phone` has the sequence)."""

from __future__ import annotations

from simulators.stages.boot import BootStage
from simulators.stages.enroll import EnrollStage
from simulators.stages.firmware import FirmwareStage
from simulators.stages.provision import ProvisionStage
from simulators.stages.redirect import RedirectStage

__all__ = ["Run"]


class Run(BootStage, EnrollStage, FirmwareStage, RedirectStage, ProvisionStage):
    """One run (boot or reprovision); dropped at the end, with its contexts. `BootStage` brings
    `SourceStage` (where the provisioning server comes from) with it."""
