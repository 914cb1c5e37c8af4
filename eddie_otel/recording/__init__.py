"""Recording: the Recorder of a runtime, the one outcome body, and the decorators' machinery."""

from eddie_otel.recording.decorators import Label, decorator
from eddie_otel.recording.outcome import Site, given_reason, is_timeout, reason_of
from eddie_otel.recording.recorder import Recorder

__all__ = ["Label", "Recorder", "Site", "decorator", "given_reason", "is_timeout", "reason_of"]
