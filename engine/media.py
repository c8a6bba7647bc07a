"""Image and video I/O: RGB uint8 arrays in and out, clear errors for unreadable files.

* ``load_image(path)`` / ``save_image(path, image)``: PNG, JPEG, WebP, BMP, TIFF (via Pillow); EXIF orientation is
  applied; grayscale, palette, 16-bit and RGBA images are converted to RGB (alpha is dropped, not composited).
* ``VideoReader(path | camera_index)``: iterate RGB frames (or ``read()`` one at a time); ``fps``, ``frame_count``,
  ``size``. Files are decoded with PyAV (FFmpeg); integer camera indices use ``cv2.VideoCapture``. Rotation
  metadata of phone videos is not applied.
* ``VideoWriter(path, fps, size)``: H.264 (libx264, yuv420p) MP4 via PyAV; ``close()`` finalises a playable file.
* ``read_frames(path, max_frames)``: a whole (short) clip as one array.
* ``to_uint8(images)``: THE conversion of generator/backend output (float, about [-1, 1]) to uint8 RGB.

Every failure to read or decode raises ``MediaError`` (a ``ValueError``) naming the file and the reason.
Heavy libraries (PIL, av, cv2, torch) are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def to_uint8(images: Any) -> np.ndarray:
    """Generator or backend output -> uint8 RGB (numpy), ``[N, H, W, 3]`` (or ``[H, W, 3]`` for one image).

    images: a torch tensor or numpy array, float ``[N, 3, H, W]`` / ``[3, H, W]`` in about [-1, 1] (mapped by
    ``round((x + 1) * 127.5)`` in float32, half to even, clipped to 0..255), or uint8 ``[N, H, W, 3]`` / ``[H, W, 3]``
    (returned as it is).
    """
    x = images if isinstance(images, np.ndarray) else images.detach().float().cpu().numpy()
    if x.dtype == np.uint8:
        if x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise ValueError(f"uint8 images must be [N, H, W, 3] or [H, W, 3], got {x.shape}")
        return x
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"float images must be [N, 3, H, W] or [3, H, W], got {x.shape}")
    u8 = np.clip(np.rint((x.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(u8, -3, -1))


class MediaError(ValueError):
    """A media file is missing, unreadable, corrupt or of an unsupported kind."""


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.is_dir():
        raise MediaError(f"{p}: is a directory, not a media file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: file is empty")
    return p


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``np.uint8 [H, W, 3]`` RGB (EXIF orientation applied).

    Raises MediaError for a missing, corrupt or unsupported file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = _check_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0
                return np.repeat(arr.round().clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
            rgb = im.convert("RGB")
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except UnidentifiedImageError as exc:
        raise MediaError(
            f"{p}: not a readable image (corrupt, or an unsupported format; use one of {', '.join(IMAGE_EXTENSIONS)})"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports truncated/corrupt data as OSError
        raise MediaError(f"{p}: corrupt or truncated image ({exc})") from exc


def save_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> Path:
    """Write ``image`` (uint8 ``[H, W, 3]`` RGB or ``[H, W]`` gray) to PNG/JPEG/WebP chosen by the extension."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"save_image expects uint8 [H, W, 3|4] or [H, W], got {arr.dtype} {arr.shape}")
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise MediaError(f"{p}: unsupported image extension (use one of {', '.join(IMAGE_EXTENSIONS)})")
    p.parent.mkdir(parents=True, exist_ok=True)
    kw = {"quality": quality} if p.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    Image.fromarray(arr).save(p, **kw)
    return p


class VideoReader:
    """Iterate the frames of a video file or a camera as ``np.uint8 [H, W, 3]`` RGB.

    source: a file path (decoded with PyAV) or an int camera index (``cv2.VideoCapture``).
    Attributes: ``fps`` (float), ``frame_count`` (int; 0 when unknown, e.g. cameras), ``size`` (width, height).

    >>> with VideoReader("clip.mp4") as r:
    ...     for frame in r: ...
    """

    def __init__(self, source: str | os.PathLike | int) -> None:
        self.source = source
        self._container = None
        self._capture = None
        self._iter: Iterator[np.ndarray] | None = None
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            self._open_camera(int(source))
        else:
            self._open_file(_check_file(source))

    def _open_file(self, p: Path) -> None:
        import av

        try:
            self._container = av.open(str(p), mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise MediaError(f"{p}: not a readable video ({exc})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise MediaError(f"{p}: has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            self._container.close()
            raise MediaError(f"{p}: video stream has no frame size (corrupt header?)")
        self.size = (int(ctx.width), int(ctx.height))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else 25.0
        count = int(stream.frames or 0)
        if count == 0 and stream.duration is not None and stream.time_base is not None:
            count = int(round(float(stream.duration * stream.time_base) * self.fps))
        self.frame_count = count

    def _open_camera(self, index: int) -> None:
        import cv2

        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise MediaError(f"camera {index}: cannot be opened (absent, busy or no permission)")
        self._capture = cap
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frame_count = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._container is not None:
            import av

            try:
                for frame in self._container.decode(self._stream):
                    yield frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as exc:
                raise MediaError(f"{self.source}: decoding failed ({exc})") from exc
        elif self._capture is not None:
            import cv2

            while True:
                ok, bgr = self._capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        else:
            raise MediaError(f"{self.source}: reader is closed")

    def read(self) -> np.ndarray | None:
        """The next frame (RGB uint8 [H, W, 3]), or None at the end of the file / when the camera stops."""
        if self._iter is None:
            self._iter = iter(self)
        return next(self._iter, None)

    def close(self) -> None:
        """Release the file or camera. Idempotent."""
        self._iter = None
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser
            pass


class VideoWriter:
    """Write RGB frames to an H.264 MP4 (libx264, yuv420p) with PyAV.

    path: output file (``.mp4``; parent folders are created).  fps: frames per second (float allowed).
    size: (width, height) of the frames you will write. H.264 in yuv420p needs even dimensions: an odd size is
    padded by one row/column (repeating the edge) and the file gets the padded, even size.
    crf / preset: libx264 quality (lower crf = better, 18-28 typical) and speed.

    >>> with VideoWriter("out.mp4", 25, (256, 256)) as w:
    ...     w.write(frame_rgb_uint8)
    """

    def __init__(
        self, path: str | os.PathLike, fps: float, size: tuple[int, int], crf: int = 20, preset: str = "veryfast"
    ) -> None:
        import av

        w, h = int(size[0]), int(size[1])
        if w < 2 or h < 2:
            raise ValueError(f"VideoWriter size must be at least 2x2, got {size}")
        if not fps or fps <= 0:
            raise ValueError(f"VideoWriter fps must be > 0, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (w, h)
        self.encoded_size = (w + w % 2, h + h % 2)
        self.fps = float(fps)
        self.frames_written = 0
        try:
            self._container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"{self.path}: cannot create video ({exc})") from exc
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self.encoded_size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset}
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Append one frame: ``np.uint8 [H, W, 3]`` RGB with (W, H) == ``size``."""
        import av

        if self._container is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        arr = np.asarray(frame)
        w, h = self.size
        if arr.dtype != np.uint8 or arr.shape != (h, w, 3):
            raise ValueError(f"VideoWriter.write expects uint8 [{h}, {w}, 3], got {arr.dtype} {arr.shape}")
        ew, eh = self.encoded_size
        if (ew, eh) != (w, h):
            arr = np.pad(arr, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finalise the file. Idempotent."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """All frames (at most ``max_frames``) of a video file as ``np.uint8 [T, H, W, 3]`` RGB."""
    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame)
        size = reader.size
    if not frames:
        return np.zeros((0, size[1], size[0], 3), dtype=np.uint8)
    return np.stack(frames)
