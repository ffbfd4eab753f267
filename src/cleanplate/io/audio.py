"""Carry the input's audio into a video output: stream copy when the container takes the codec,
else decode and re-encode (AAC for mp4/mov, Opus for WebM).

The carrier reads the input with its own demuxer, so the video reader thread is untouched, and
muxes audio progressively (:meth:`AudioCarrier.mux_until`) so memory stays flat and a file closed
early (Ctrl-C) holds the audio of the frames it holds. Audio is cut to the same range as the video
(``--start``/``--end``) and shifted by the same offset, so sync is kept.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Codecs each container family plays back reliably when copied. Other containers: whatever the
# muxer supports (Matroska takes nearly everything).
COPY_ALLOWED: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}),
    "mov": frozenset(
        {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"}
    ),
    "webm": frozenset({"opus", "vorbis"}),
}
LOOKAHEAD_S = 0.5  # audio muxed ahead of the last video frame; the muxer interleaves the rest


def audio_codec_name(path: str | Path) -> str | None:
    """The first audio stream's codec name, or None when the file has no (decodable) audio."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return container.streams.audio[0].codec_context.name
    except (av.FFmpegError, OSError):
        return None


def can_copy(codec: str, container: av.container.OutputContainer) -> bool:
    """True when ``codec`` packets can go into ``container`` unchanged and still play."""
    family = container.format.name.split(",")[0]
    allowed = COPY_ALLOWED.get(family)
    if allowed is not None:
        return codec in allowed
    return codec in container.supported_codecs


class AudioCarrier:
    """Moves the first audio stream of ``source`` into ``output`` within [start, end) seconds.

    ``offset`` (seconds) is subtracted from every timestamp: it is the time of the first video
    frame written, so audio and video start together. ``reencode`` names the codec to use when a
    copy is not possible (None: drop the audio rather than re-encode).
    """

    def __init__(
        self,
        source: str | Path,
        output: av.container.OutputContainer,
        *,
        start: float = 0.0,
        end: float | None = None,
        offset: float = 0.0,
        reencode: str | None = "aac",
    ) -> None:
        self.source = Path(source)
        # Audio before the first video frame is cut too, so both start together without negative
        # timestamps (0 keeps everything, including a codec's priming packet before 0).
        self.start, self.end, self.offset = max(float(start), float(offset)), end, float(offset)
        self._input = av.open(str(self.source))
        self._in_stream = self._input.streams.audio[0]
        self._out = output
        self._done = False
        self._packets = None
        self.codec = self._in_stream.codec_context.name
        self.mode = "copy" if can_copy(self.codec, output) else reencode
        if self.mode is None:
            self.close()
            self._done = True
            return
        self._edit_lists = output.format.name.split(",")[0] in ("mov", "mp4", "ipod", "3gp")
        if self.mode == "copy":
            self.stream = output.add_stream_from_template(self._in_stream)
        else:
            self._setup_encoder(self.mode)
        self._seek()
        self._packets = self._input.demux(self._in_stream)

    # -- setup -----------------------------------------------------------------------------------
    def _setup_encoder(self, codec: str) -> None:
        src = self._in_stream.codec_context
        codec_obj = av.Codec(codec, "w")
        rate = src.sample_rate or 48000
        if codec in ("libopus", "opus") or codec_obj.audio_rates and rate not in codec_obj.audio_rates:
            rate = 48000
        layout = "mono" if src.channels == 1 else "stereo"
        fmt = codec_obj.audio_formats[0].name if codec_obj.audio_formats else "fltp"
        self.stream = self._out.add_stream(codec, rate=rate, layout=layout)
        self.stream.format = fmt
        self.stream.time_base = Fraction(1, rate)
        self._rate = rate
        self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self._samples_out: int | None = None

    def _seek(self) -> None:
        if self.start <= 0:
            return
        tb = self._in_stream.time_base
        target = int(max(0.0, self.start - 1.0) / tb) + (self._in_stream.start_time or 0)
        with contextlib.suppress(av.FFmpegError):
            self._input.seek(target, stream=self._in_stream, backward=True)

    @property
    def active(self) -> bool:
        return not self._done

    # -- muxing ----------------------------------------------------------------------------------
    def mux_until(self, t: float) -> None:
        """Mux audio up to output time ``t`` + a small lookahead (seconds)."""
        limit = t + self.offset + LOOKAHEAD_S
        while not self._done:
            packet = next(self._packets, None)
            if packet is None:
                self.flush()
                return
            if packet.pts is None:
                continue
            self._handle(packet)
            if float(packet.pts * packet.time_base) > limit:
                return

    def finish(self) -> None:
        """Mux what remains up to ``end`` and flush the encoder."""
        self.mux_until(float("inf"))

    def _handle(self, packet: av.Packet) -> None:
        tb = packet.time_base
        t0 = float(packet.pts * tb)
        dur = float((packet.duration or 0) * tb)
        if self.end is not None and t0 >= self.end:
            self.flush()
            return
        if self.mode == "copy":
            # A copied packet cannot be cut: keep whole packets that start inside the range
            # (the untrimmed case keeps the codec's priming packet before 0 as well).
            if self.start > 0 and t0 < self.start - 1e-6:
                return
            shift = round(self.offset / tb)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            if packet.pts < 0 and not self._edit_lists:
                # Matroska/WebM cannot start before 0 and would delay the video instead; the
                # codec's priming packet is dropped (the decoder skips those samples anyway).
                return
            packet.stream = self.stream
            self._out.mux(packet)
            return
        if t0 + dur < self.start:
            return
        for frame in self._in_stream.decode(packet):
            self._encode_trimmed(frame)

    def _encode_trimmed(self, frame: av.AudioFrame) -> None:
        """Cut ``frame`` to [start, end) at sample precision, resample and encode it."""
        if frame.pts is None or frame.samples == 0:
            return
        t = float(frame.pts * frame.time_base)
        rate = frame.sample_rate
        first = max(0, round((self.start - t) * rate)) if self.start > 0 else 0
        last = frame.samples
        if self.end is not None:
            last = min(last, max(0, round((self.end - t) * rate)))
        if first >= last:
            return
        if first > 0 or last < frame.samples:
            frame = _slice(frame, first, last)
            t += first / rate
        for out in self._resampler.resample(frame):
            self._encode(out, t)

    def _encode(self, frame: av.AudioFrame, t: float) -> None:
        if self._samples_out is None:
            self._samples_out = max(0, round((t - self.offset) * self._rate))
        frame.pts = self._samples_out
        frame.time_base = Fraction(1, self._rate)
        self._samples_out += frame.samples
        for packet in self.stream.encode(frame):
            self._out.mux(packet)

    def flush(self) -> None:
        """Stop here: flush the encoder (re-encode mode) and release the input."""
        if self._done:
            return
        self._done = True
        if self.mode not in (None, "copy"):
            with contextlib.suppress(ValueError):
                for out in self._resampler.resample(None):
                    self._encode(out, self.offset)
            for packet in self.stream.encode(None):
                self._out.mux(packet)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._input.close()


def _slice(frame: av.AudioFrame, first: int, last: int) -> av.AudioFrame:
    """Samples [first, last) of ``frame`` as a new frame (planar or packed)."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    scale = 1 if frame.format.is_planar else channels  # packed audio interleaves the channels
    part = array[:, first * scale : last * scale]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    out.pts = None
    return out
