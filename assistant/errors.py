"""The appliance's error hierarchy: library code raises these, only the CLI turns them into messages."""

from __future__ import annotations


class AssistantError(Exception):
    """Base of every error the appliance raises on purpose; its text is shown to the user."""

    exit_code: int = 1


class ConfigError(AssistantError, ValueError):
    """A configuration file or value is wrong; the message names the key, the value and the file."""

    exit_code = 2


class ConfigUnreadable(ConfigError, PermissionError):
    """A config file this user may not read: a login user and the installed service's
    /etc/assistant/config.yaml (root:assistant, mode 0640, in a 0750 directory)."""

    def __init__(self, path: object, readers: str | None) -> None:
        self.path = path
        self.readers = readers
        """The group that may read it (and so the user to run as), None when only root may."""
        super().__init__(self.message())

    def message(self, command: str = "assistant ...") -> str:
        """The one-line message, with the command line to run instead."""
        if self.readers:
            return (f"cannot read config file {self.path}: permission denied (only root and group "
                    f"{self.readers} may); run it as the service user: sudo -u {self.readers} {command} "
                    f"(or: sudo {command})")
        return f"cannot read config file {self.path}: permission denied (only root may); run: sudo {command}"


class ModelNotFound(AssistantError, FileNotFoundError):
    """A model file or directory that the configuration names does not exist."""

    exit_code = 3


class ModelError(AssistantError):
    """A model exists but cannot be loaded or used (corrupt, wrong format, wrong kind)."""

    exit_code = 3


class AudioFormatError(AssistantError, ValueError):
    """Audio input that cannot be read or converted (not a WAV, truncated, unsupported encoding)."""

    exit_code = 4


class AudioWriteError(AssistantError, OSError):
    """An audio file could not be written (disk full, no permission); nothing partial is left."""

    exit_code = 4


class AudioDeviceError(AssistantError):
    """A sound device is missing, busy or went away, or PortAudio is not installed."""

    exit_code = 5


class DeviceError(AssistantError):
    """A GPIO pin (button, LED) cannot be opened or driven."""

    exit_code = 9


class BatteryReadError(AssistantError):
    """The battery gauge could not be read or gave an implausible reading."""

    exit_code = 6


class InstallError(AssistantError):
    """A model could not be downloaded, verified or put in place."""

    exit_code = 7


class NoSpeech(AssistantError):
    """The audio held no recognisable speech (silence, noise, or a tap too short to be speech)."""

    exit_code = 8


class DrainError(AssistantError):
    """A drain run cannot start, resume or be reported (missing or foreign run directory, finished run)."""

    exit_code = 10
