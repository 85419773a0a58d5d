"""The resampler: frequency and level kept, no aliasing or imaging, streaming = whole."""

from __future__ import annotations


import numpy as np
import pytest

from assistant.messages import AudioClip
from assistant.speech.resample import StreamResampler, resample_array
from assistant.speech.wav import resample
from audio_fixtures import amplitude_at, band_level_db, dominant_frequency, tone

PAIRS = [(8000, 16000), (44100, 16000), (48000, 16000), (22050, 16000), (11025, 16000),
         (16000, 48000), (16000, 22050), (47999, 16000)]


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_one_kilohertz_keeps_frequency_and_level(rate_in: int, rate_out: int) -> None:
    x = tone(1000, 2.0, rate_in, amp=0.5)
    y = resample_array(x, rate_in, rate_out)
    assert len(y) == -(-len(x) * rate_out // rate_in)
    core = y[rate_out // 10 : -rate_out // 10]  # away from the edges
    assert abs(dominant_frequency(core, rate_out) - 1000) < 0.5
    level = 20 * np.log10(amplitude_at(core, rate_out, 1000) / (0.5 * 32767))
    assert abs(level) < 0.05  # the brief allows 1 dB; the passband is flat to 0.9 x Nyquist


def test_time_alignment_is_preserved() -> None:
    """A click at 0.5 s is still at 0.5 s after conversion (no filter delay)."""
    x = np.zeros(44100, np.int16)
    x[22050] = 30000
    y = resample_array(x, 44100, 16000).astype(float)
    assert abs(np.argmax(np.abs(y)) - 8000) <= 1


@pytest.mark.parametrize("freq", [7000, 7200])
def test_high_passband_tone_passes_unchanged(freq: int) -> None:
    """48k -> 16k: 7 kHz (below the 7.2 kHz passband edge) keeps its frequency and level."""
    y = resample_array(tone(freq, 1.0, 48000), 48000, 16000)[800:-800]
    assert abs(dominant_frequency(y, 16000) - freq) < 0.5
    assert abs(20 * np.log10(amplitude_at(y, 16000, freq) / (0.5 * 32767))) < 0.1


@pytest.mark.parametrize(("rate_in", "freq"), [(48000, 9000), (48000, 10000), (48000, 12000),
                                               (48000, 15000), (48000, 23000), (44100, 9000),
                                               (44100, 14100), (22050, 9000), (22050, 10500)])
def test_tones_above_the_new_nyquist_do_not_alias_into_the_passband(rate_in: int, freq: int) -> None:
    """A naive decimator folds ``freq`` to ``16000 - freq`` (e.g. 9 kHz -> 7 kHz); ours removes it."""
    x = tone(freq, 1.0, rate_in)
    y = resample_array(x, rate_in, 16000)[800:-800]
    naive = x[:: rate_in // 16000] if rate_in % 16000 == 0 else None
    if naive is not None:  # show that the test signal would alias without the filter
        assert band_level_db(naive[800:-800], 16000, 0, 7200, 0.5 * 32767) > -3
    assert band_level_db(y, 16000, 0, 7200, 0.5 * 32767) < -75


def test_upsampling_makes_no_images() -> None:
    """8k -> 16k: a 3 kHz tone must not bring an image at 5 kHz (8000 - 3000)."""
    y = resample_array(tone(3000, 1.0, 8000), 8000, 16000)[1600:-1600]
    assert abs(dominant_frequency(y, 16000) - 3000) < 0.5
    assert band_level_db(y, 16000, 4400, 8000, 0.5 * 32767) < -75


def test_full_scale_input_clips_instead_of_wrapping() -> None:
    square = np.where(np.arange(4800) % 96 < 48, 32767, -32768).astype(np.int16)
    y = resample_array(square, 48000, 16000)
    assert y.dtype == np.int16 and y.max() == 32767 and y.min() == -32768  # Gibbs overshoot clipped


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44100, 16000), (48000, 16000), (8000, 16000),
                                                   (22050, 16000), (47999, 16000)])
def test_streaming_matches_whole_clip(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(rate_in) * 4000).astype(np.int16)
    whole = resample_array(x, rate_in, rate_out)
    stream = StreamResampler(rate_in, rate_out)
    parts, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, rate_in // 10))
        parts.append(stream.feed(x[pos : pos + n]))
        pos += n
    parts.append(stream.flush())
    joined = np.concatenate(parts)
    assert len(joined) == len(whole)
    assert np.abs(joined.astype(int) - whole).max() <= 1  # float32 summation order only


def test_stereo_channels_stay_apart() -> None:
    left, right = tone(500, 1.0, 44100), tone(1500, 1.0, 44100)
    clip = AudioClip(np.stack([left, right], axis=1).tobytes(), 44100, 2)
    out = resample(clip, 16000)
    y = np.frombuffer(out.pcm, "<i2").reshape(-1, 2)[1600:-1600]
    assert out.channels == 2 and out.rate == 16000
    assert abs(dominant_frequency(y[:, 0], 16000) - 500) < 0.5
    assert abs(dominant_frequency(y[:, 1], 16000) - 1500) < 0.5


def test_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        resample_array(np.zeros(10, np.int16), 0, 16000)
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(16000, -1)
