"""Every simulation of the appliance's hardware, in one place and labelled as one.

- ``pack``: a battery pack that drains by a CPU power model (``--sim`` runs and the drain test);
  its readings carry ``simulated=True``, so no tier or shutdown decision on a device trusts them.
- ``chips``: register-level emulations of the UPS HATs' gauge chips (INA219, MAX1704x, the
  Waveshare UPS HAT (E) MCU, pisugar-server's socket), written from the vendors' datasheets and
  code; the real drivers read them through the same bus interface as ``/dev/i2c-N``.
- ``devices``: a microphone fed from WAV files and gpiozero's mock pins for the button and LED.

Nothing in the appliance's device path imports these unless asked for a simulation.
"""
