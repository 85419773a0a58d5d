"""Re-create tests/data/people/ from recordings of real people that ship in registry packages.

Usage: python tests/people_make_data.py /path/to/pocketsphinx-5.1.1 /path/to/asterisk-sounds

- ``pocketsphinx-5.1.1``: the unpacked PyPI source distribution (its test data: LibriVox read
  speech, CMU command and digit recordings).
- ``asterisk-sounds``: the files of the Debian package ``asterisk-core-sounds-en-wav``, unpacked
  (``apt-get download asterisk-core-sounds-en-wav && dpkg -x asterisk-core-sounds-en-wav_*.deb DIR``,
  then pass ``DIR/usr/share/asterisk/sounds/en_US_f_Allison``): prompts recorded by Allison Smith,
  8 kHz telephone band, CC-BY-SA-3.0.

Each is written in a different WAV format that people's recorders and phones produce, so the tests
also exercise the WAV reader and resampler on real speech. One clip is mixed with babble (six other
prompts of the same package played at once) at 10 dB SNR: speech in a room full of talk.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from assistant.messages import AudioClip
from assistant.speech.wav import convert, read_wav

OUT = Path(__file__).resolve().parent / "data" / "people"


def write_pcm(path: Path, samples: np.ndarray, rate: int, channels: int, fmt: str) -> None:
    """Write float samples in [-1, 1] (frames x channels) as a WAV of the given sample format."""
    x = np.clip(samples, -1.0, 1.0)
    if fmt == "u8":
        data, code, bits = (np.round(x * 127) + 128).astype(np.uint8).tobytes(), 1, 8
    elif fmt == "s16":
        data, code, bits = np.round(x * 32767).astype("<i2").tobytes(), 1, 16
    elif fmt == "s24":
        v = np.round(x * 8388607).astype("<i4").reshape(-1)
        data = b"".join(int(s).to_bytes(3, "little", signed=True) for s in v)
        code, bits = 1, 24
    elif fmt == "f32":
        data, code, bits = x.astype("<f4").tobytes(), 3, 32
    else:
        raise ValueError(fmt)
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", code, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def as_float(clip: AudioClip) -> np.ndarray:
    return np.frombuffer(clip.pcm, "<i2").astype(np.float64).reshape(-1, clip.channels) / 32768.0


ASTERISK = (
    # file stem, written as (rate, channels, sample format)
    ("vm-savefolder", 8000, 1, "s16"),  # a phone call recording
    ("privacy-unident", 44100, 2, "s16"),
    ("conf-now-recording", 48000, 1, "f32"),
    ("please-try-call-later", 16000, 1, "s24"),
    ("vm-invalidpassword", 22050, 1, "s16"),
    ("demo-nomatch", 11025, 1, "u8"),
    ("check-number-dial-again", 8000, 1, "s16"),
)
BABBLE = ("conf-leaderhasleft", "agent-pass", "vm-nobox", "privacy-prompt", "confbridge-only-one", "vm-starmain")
NOISY = "vm-whichbox"


def babble_mix(speech: np.ndarray, others: list[np.ndarray], snr_db: float) -> np.ndarray:
    """``speech`` with the sum of ``others`` (looped to its length) added ``snr_db`` below its power."""
    noise = np.zeros_like(speech)
    for k, o in enumerate(others):
        noise += np.roll(np.resize(o, speech.shape), k * 3000)
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return speech + gain * noise


def asterisk(src: Path) -> None:
    for stem, rate, channels, fmt in ASTERISK:
        x = as_float(convert(read_wav(src / f"{stem}.wav"), rate, 1))
        if channels == 2:
            x = np.hstack([x, 0.8 * x])
        write_pcm(OUT / f"phone-{stem}.wav", x, rate, channels, fmt)
    speech = as_float(read_wav(src / f"{NOISY}.wav"))[:, 0]
    others = [as_float(read_wav(src / f"{b}.wav"))[:, 0] for b in BABBLE]
    mixed = babble_mix(speech, others, 10.0)
    mixed *= 0.5 / np.max(np.abs(mixed))
    clip = AudioClip(np.round(mixed * 32767).astype("<i2").tobytes(), 8000)
    x = as_float(convert(clip, 48000, 1))
    write_pcm(OUT / f"noisy-{NOISY}.wav", np.hstack([x, x]), 48000, 2, "s16")


def main(src: Path, asterisk_src: Path | None = None) -> None:
    data = src / "test" / "data"
    OUT.mkdir(parents=True, exist_ok=True)
    raw = lambda name: AudioClip((data / name).read_bytes(), 16000)  # noqa: E731
    jobs: list[tuple[str, AudioClip, int, int, str]] = [
        # name, clip, rate, channels, sample format
        ("command-goforward", raw("goforward.raw"), 44100, 2, "s16"),  # a phone's stereo 44.1 kHz
        ("digits-29340", raw("tidigits/dhd.2934z.raw"), 11025, 1, "u8"),  # an old 8-bit voice recorder
        ("read-0880", read_wav(data / "librivox/sense_and_sensibility_01_austen_64kb-0880.wav"), 48000, 1, "f32"),
        ("read-0890", read_wav(data / "librivox/sense_and_sensibility_01_austen_64kb-0890.wav"), 22050, 1, "s24"),
        ("read-0930", read_wav(data / "librivox/sense_and_sensibility_01_austen_64kb-0930.wav"), 16000, 1, "s16"),
        ("read-0870", read_wav(data / "librivox/sense_and_sensibility_01_austen_64kb-0870.wav"), 44100, 2, "s24"),
        ("read-0920", read_wav(data / "librivox/sense_and_sensibility_01_austen_64kb-0920.wav"), 16000, 1, "s24"),
    ]
    for i in range(1, 6):
        jobs.append((f"cards-{i:03d}", read_wav(data / f"cards/{i:03d}.wav"), 16000, 1, "s16"))
    for name, clip, rate, channels, fmt in jobs:
        resampled = convert(clip, rate, 1)
        x = as_float(resampled)
        if channels == 2:
            x = np.hstack([x, 0.8 * x])
        write_pcm(OUT / f"{name}.wav", x, rate, channels, fmt)  # written here, not by the reader under test
    if asterisk_src is not None:
        asterisk(asterisk_src)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
