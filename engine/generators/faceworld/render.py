"""FaceWorld's renderer: analytic ray casting of ellipsoids with painted, geometry-tied facial features.

Everything is plain batched torch (elementwise ops, no data-dependent control flow), so it is differentiable and
exports to ONNX. Camera: orthographic, looking down -z; image coordinates x, y in [-1, 1] (y up). A head-local
point ``q`` maps to the camera frame as ``p = scale * R q + (tx, ty, 0)`` with ``R = Rz(roll) Ry(yaw) Rx(pitch)``.

The head is a union of ellipsoids in the head frame (cranium, jaw, nose, ears); for every pixel the front-most hit
gives a head-local surface point on which the features (eyes with whites, iris, pupil and lids; brows; lips, mouth
interior and teeth; nostrils; hair) are painted as soft masks of the local coordinates, so they rotate,
foreshorten and get occluded with the head. Neck and shoulders live in an unrotated body frame; long hair is a
volume behind the head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BASE_SCALE = 0.56  # image half-size units per head unit at scale 1 (head ~55 % of the image height)

Params = dict[str, Tensor]


def _sig(x: Tensor) -> Tensor:
    """Sigmoid with a clamped input (keeps exp out of the slow denormal range)."""
    return torch.sigmoid(x.clamp(-15.0, 15.0))


def _col(*rgb: float) -> Tensor:
    return torch.tensor(rgb, dtype=torch.float32)


def _b(x: Tensor) -> Tensor:
    """[N] -> [N, 1, 1] for broadcasting against [N, H, W] maps."""
    return x[:, None, None]


def _lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    return a + (b - a) * t


def rotation(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch), [N] angles -> [N, 3, 3]."""
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rx = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def geometry(p: Params) -> dict[str, Tensor]:
    """Named parameters -> head-frame geometry (all [N] or [N, 3]) shared by the renderer and the keypoints."""
    g: dict[str, Tensor] = {}
    fw, fl = p["face_width"], p["face_length"]
    jaw = p["jaw_open"]
    one = torch.ones_like(fw)
    zero = torch.zeros_like(fw)

    def v3(x: Tensor | float, y: Tensor | float, z: Tensor | float) -> Tensor:
        return torch.stack([x * one, y * one, z * one], -1)

    crx = 0.78 * (1 + 0.08 * fw)
    g["cranium_c"] = v3(0.0, 0.12, 0.0)
    g["cranium_r"] = v3(crx, 0.92 * (1 + 0.05 * fl), 0.82 * one)
    jrx = 0.62 * (1 + 0.10 * p["jaw_shape"]) * (1 + 0.08 * fw)
    jry = 0.62 * (1 + 0.05 * fl) + 0.04 * p["chin_length"]
    g["jaw_c"] = v3(0.0, -0.32 - 0.11 * jaw - 0.03 * p["chin_length"], 0.06)
    g["jaw_r"] = v3(jrx, jry, 0.72 * one)
    ns, nl = p["nose_size"], p["nose_length"]
    g["nose_c"] = v3(0.0, -0.12 - 0.02 * nl, 0.72)
    g["nose_r"] = v3(0.10 * (1 + 0.15 * ns), 0.19 * (1 + 0.12 * nl), 0.23 * (1 + 0.12 * ns))
    ear_ry = 0.19 * (1 + 0.15 * p["ear_size"])
    g["ear_l_c"] = v3(crx * 0.96, 0.0, -0.06)
    g["ear_r"] = v3(0.09, ear_ry, 0.15)
    hair_len = 0.5 * (p["hair_style"] + 1)  # 0 short .. 1 long
    hv = p["hair_volume"]
    g["hair_c"] = v3(0.0, 0.16 - 0.42 * hair_len, -0.25)
    g["hair_r"] = v3(crx * (1.12 + 0.08 * hv) + 0.06 * hair_len, 0.98 + 0.42 * hair_len + 0.04 * hv, 0.85)
    g["hairline"] = 0.50 - 0.08 * p["hairline"] + zero

    # eyes (centres at +-es), brows, mouth
    g["eye_y"] = 0.06 + 0.04 * p["eye_height"]
    g["eye_x"] = 0.29 * (1 + 0.08 * p["eye_spacing"])
    g["eye_w"] = 0.14 * (1 + 0.10 * p["eye_size"])
    g["eye_h"] = 0.074 * (1 + 0.12 * p["eye_size"])
    g["brow_y"] = g["eye_y"] + 0.15 + 0.075 * p["brow_raise"] - 0.02 * p["frown"]
    g["brow_w"] = g["eye_w"] * 1.3
    g["brow_t"] = 0.04 * (1 + 0.25 * p["brow_thickness"])
    g["brow_arch"] = 0.035 * (1 + 0.4 * p["brow_arch"]) + 0.02 * p["brow_raise"]
    g["mouth_y"] = -0.43 - 0.02 * p["chin_length"] + 0.02 * p["smile"]
    g["mouth_w"] = 0.215 * (1 + 0.07 * p["mouth_width"]) * (1 + 0.42 * p["smile"] - 0.30 * p["pucker"])
    g["smile_curve"] = 0.075 * p["smile"] - 0.02 * p["frown"]
    g["gap_up"] = 0.004 + 0.03 * jaw
    g["gap_dn"] = 0.004 + 0.19 * jaw
    lip = 1 + 0.25 * p["lip_thickness"] + 0.3 * p["pucker"]
    g["lip_up"] = 0.042 * lip
    g["lip_dn"] = 0.055 * lip
    return g


def surface_z(g: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Head-frame depth of the front face surface at head-frame (x, y): max over cranium and jaw, [N]."""
    zs = []
    for name in ("cranium", "jaw"):
        c, r = g[name + "_c"], g[name + "_r"]
        u = ((x - c[:, 0]) / r[:, 0]) ** 2 + ((y - c[:, 1]) / r[:, 1]) ** 2
        zs.append(c[:, 2] + r[:, 2] * torch.sqrt((1 - u).clamp(min=1e-4)))
    return torch.maximum(zs[0], zs[1])


def local_keypoints(p: Params, g: dict[str, Tensor]) -> dict[str, Tensor]:
    """Head-frame 3-D positions [N, 3] of the key facial points."""
    out: dict[str, Tensor] = {}

    def pt(x: Tensor, y: Tensor, z: Tensor | None = None) -> Tensor:
        if z is None:
            z = surface_z(g, x, y)
        return torch.stack([x, y, z], -1)

    ex, ey, ew, eh = g["eye_x"], g["eye_y"], g["eye_w"], g["eye_h"]
    out["eye_left"] = pt(ex, ey)
    out["eye_right"] = pt(-ex, ey)
    out["iris_left"] = pt(ex + p["gaze_x"] * ew * 0.42, ey + p["gaze_y"] * eh * 0.35)
    out["iris_right"] = pt(-ex + p["gaze_x"] * ew * 0.42, ey + p["gaze_y"] * eh * 0.35)
    out["brow_left"] = pt(ex, g["brow_y"] + g["brow_arch"])
    out["brow_right"] = pt(-ex, g["brow_y"] + g["brow_arch"])
    nc, nr = g["nose_c"], g["nose_r"]
    out["nose_tip"] = nc + torch.stack([torch.zeros_like(ex), torch.zeros_like(ex), nr[:, 2]], -1)
    my, mw, sc = g["mouth_y"], g["mouth_w"], g["smile_curve"]
    out["mouth_left"] = pt(mw, my + sc)
    out["mouth_right"] = pt(-mw, my + sc)
    zero = torch.zeros_like(ex)
    out["lip_upper"] = pt(zero, my + g["gap_up"] + g["lip_up"])
    out["lip_lower"] = pt(zero, my - g["gap_dn"] - g["lip_dn"])
    out["lip_upper_inner"] = pt(zero, my + g["gap_up"])
    out["lip_lower_inner"] = pt(zero, my - g["gap_dn"])
    jc, jr = g["jaw_c"], g["jaw_r"]
    out["chin"] = jc + torch.stack([zero, -0.93 * jr[:, 1], 0.37 * jr[:, 2]], -1)
    return out


def project(p: Params, q: Tensor, resolution: int) -> Tensor:
    """Head-frame points q [N, 3] -> pixel coordinates [N, 2] (x right, y down; pixel i covers [i, i+1))."""
    r = rotation(p["yaw"], p["pitch"], p["roll"])
    s = BASE_SCALE * p["scale"]
    cam = torch.einsum("nij,nj->ni", r, q) * s[:, None]
    x = cam[:, 0] + p["tx"]
    y = cam[:, 1] + p["ty"]
    return torch.stack([(x + 1) * 0.5 * resolution, (1 - y) * 0.5 * resolution], -1)


class _Hit:
    """Front intersection of the per-pixel rays ``o + t d`` with one ellipsoid (centre c, radii r, head frame).

    alpha: soft coverage [N, H, W]; t: depth along the ray; q: hit point; n: unit normal (computed on demand).
    """

    def __init__(
        self,
        o: tuple[Tensor, Tensor, Tensor],
        d: Tensor | tuple[Tensor, Tensor, Tensor],
        c: Tensor,
        r: Tensor,
        sharp: Tensor,
    ) -> None:
        ox, oy, oz = o
        self.c = tuple(_b(c[:, i]) for i in range(3))
        self.r = tuple(_b(r[:, i]) for i in range(3))
        (cx, cy, cz), (rx, ry, rz) = self.c, self.r
        dx, dy, dz = d if isinstance(d, tuple) else (_b(d[:, i]) for i in range(3))
        ux, uy, uz = (ox - cx) / rx, (oy - cy) / ry, (oz - cz) / rz
        vx, vy, vz = dx / rx, dy / ry, dz / rz
        a = vx * vx + vy * vy + vz * vz  # [N, 1, 1]
        bh = ux * vx + uy * vy + uz * vz
        disc = bh * bh - a * (ux * ux + uy * uy + uz * uz - 1)
        self.alpha = _sig(disc * (_b(sharp * r.mean(-1)) / a))
        self.t = (torch.sqrt(disc.clamp(min=1e-6)) - bh) / a
        self.q = (ox + self.t * dx, oy + self.t * dy, oz + self.t * dz)

    def normal(self) -> tuple[Tensor, Tensor, Tensor]:
        (cx, cy, cz), (rx, ry, rz) = self.c, self.r
        nx, ny, nz = (self.q[0] - cx) / (rx * rx), (self.q[1] - cy) / (ry * ry), (self.q[2] - cz) / (rz * rz)
        inv = torch.rsqrt(nx * nx + ny * ny + nz * nz + 1e-8)
        return nx * inv, ny * inv, nz * inv


def _body_hit(x: Tensor, y: Tensor, c: tuple[float, float], r: Tensor, sharp: Tensor) -> tuple[Tensor, Tensor]:
    """Unrotated ellipsoid seen along z (neck, shoulders): coverage [N, H, W] and a view-facing shading term."""
    rx, ry = _b(r[:, 0]), _b(r[:, 1])
    ux, uy = (x - c[0]) / rx, (y - c[1]) / ry
    e = 1 - ux * ux - uy * uy
    alpha = _sig(e * _b(sharp * r[:, 0]))
    return alpha, e.clamp(min=0)


def _ellipse(u: Tensor, v: Tensor, cu: Tensor, cv: Tensor, ru: Tensor, rv: Tensor, k: Tensor) -> Tensor:
    """Soft mask of an ellipse in a local 2-D frame; k = sharpness per head unit ([N, 1, 1] or scalar)."""
    e = 1 - ((u - cu) / ru) ** 2 - ((v - cv) / rv) ** 2
    return _sig(e * torch.minimum(ru, rv) * 0.5 * k)


def _band(v: Tensor, lo: Tensor, hi: Tensor, k: Tensor) -> Tensor:
    """Soft mask of lo < v < hi."""
    return _sig((v - lo) * k) * _sig((hi - v) * k)


def colours(p: Params) -> dict[str, Tensor]:
    """Appearance parameters -> RGB colours [N, 3] in [0, 1] and lighting terms."""
    c: dict[str, Tensor] = {}
    tone = p["skin_tone"][:, None]
    skin = _lerp(_col(0.97, 0.80, 0.68), _col(0.42, 0.27, 0.18), tone)
    skin = skin + p["skin_warmth"][:, None] * _col(0.035, 0.0, -0.035)
    c["skin"] = skin.clamp(0, 1)
    hue = p["hair_hue"][:, None]
    base = _lerp(_col(0.86, 0.70, 0.42), _col(0.56, 0.24, 0.10), hue)
    c["hair"] = _lerp(base, _col(0.07, 0.055, 0.05), p["hair_color"][:, None])
    c["brow"] = c["hair"] * 0.45 + 0.03
    c["iris"] = _lerp(_col(0.36, 0.20, 0.09), _col(0.22, 0.45, 0.62), p["eye_color"][:, None])
    lips = _lerp(_col(0.80, 0.45, 0.45), _col(0.66, 0.16, 0.22), p["lip_color"][:, None])
    c["lips"] = 0.7 * lips + 0.3 * c["skin"] * _col(0.85, 0.55, 0.55)
    two_pi = 2 * math.pi
    phase = _col(0.0, 1.0 / 3.0, 2.0 / 3.0)
    bg = 0.5 + 0.22 * torch.cos(two_pi * (p["background"][:, None] + phase))
    c["background"] = bg * (0.45 + 0.6 * p["background_value"][:, None])
    shirt = 0.5 + 0.35 * torch.cos(two_pi * (p["shirt_color"][:, None] + phase))
    c["shirt"] = shirt * (0.25 + 0.7 * p["shirt_value"][:, None])
    az, el = p["light_azimuth"], p["light_elevation"]
    c["light"] = torch.stack([torch.sin(az) * torch.cos(el), torch.sin(el), torch.cos(az) * torch.cos(el)], -1)
    c["light_intensity"] = 0.55 + 0.45 * p["light_intensity"]
    return c


def _paint(img: Tensor, colour: Tensor, mask: Tensor) -> Tensor:
    """img [N, 3, H, W], colour [N, 3] or [N, 3, H, W], mask [N, H, W] -> alpha-composited image."""
    if colour.ndim == 2:
        colour = colour[:, :, None, None]
    return img + (colour - img) * mask[:, None]


# The painted features live in a texture over the head-frame (x, y) square centred at TEX_CENTER with half-size
# TEX_HALF; every pixel looks it up at its own head-frame surface point (so features rotate, foreshorten and get
# occluded with the head). The texture has TEX_FACTOR texels per output pixel row (it is coarser than the image).
TEX_CENTER = (0.0, -0.14)
TEX_HALF = 0.64
TEX_FACTOR = 0.5


def feature_texture(p: Params, g: dict[str, Tensor], col: dict[str, Tensor], size: int, k: Tensor) -> Tensor:
    """Paint eyes, lids, brows, lips, mouth interior, teeth, blush and nostrils in head-frame (x, y).

    Returns [N, 5, size, size]: premultiplied RGB (3), coverage (1), nostril darkness (1); row 0 is the top.
    """
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    batch_zero = _b(p["yaw"] * 0)  # [N, 1, 1]: keeps the batch size symbolic for export
    qx = (TEX_CENTER[0] + TEX_HALF * t)[None, None, :] + batch_zero
    qy = (TEX_CENTER[1] - TEX_HALF * t)[None, :, None] + batch_zero
    cov = qx * qy * 0
    rgb = cov[:, None].repeat(1, 3, 1, 1)

    def over(colour: Tensor, m: Tensor) -> None:
        nonlocal rgb, cov
        c = colour[:, :, None, None] if colour.ndim == 2 else colour
        rgb = rgb + (c - rgb) * m[:, None]
        cov = cov + (1 - cov) * m

    ex, ey, ew, eh = _b(g["eye_x"]), _b(g["eye_y"]), _b(g["eye_w"]), _b(g["eye_h"])
    gzx, gzy = _b(p["gaze_x"]), _b(p["gaze_y"])
    skin = col["skin"]
    cheeks = _ellipse(qx.abs(), qy, ex * 1.05, ey - 0.27, 0.16 + 0 * ex, 0.1 + 0 * ey, k) * _b(p["blush"])
    over(_col(0.85, 0.35, 0.35)[None], cheeks * 0.3)
    for side, blink in ((1.0, p["blink_left"]), (-1.0, p["blink_right"])):
        cx = side * ex
        u = (qx - cx) / ew  # -1..1 across the eye
        par = (1 - u * u).clamp(min=0)
        bl = _b(blink)
        lower = ey - eh * 0.62 * par
        upper = ey + eh * par * (1 - bl) - eh * 0.62 * par * bl
        socket = _ellipse(qx, qy, cx, ey + 0.01, ew * 1.45, eh * 2.3, k)
        over(skin * 0.8, socket * 0.4)
        inside = _sig((1 - u.abs()) * ew * k)
        eye = _band(qy, lower, upper, k) * inside
        # lash line along the upper lid (stays visible when closed)
        lash = _band(qy, upper - 0.008, upper + 0.024, k) * _sig((1.1 - u.abs()) * ew * k)
        over(_col(0.10, 0.07, 0.07)[None], lash)
        over(_col(0.95, 0.94, 0.92)[None], eye)
        icx = cx + gzx * ew * 0.45
        icy = ey + gzy * eh * 0.35
        ir = eh * 0.88
        over(col["iris"], _ellipse(qx, qy, icx, icy, ir, ir, k) * eye)
        over(_col(0.03, 0.03, 0.03)[None], _ellipse(qx, qy, icx, icy, ir * 0.45, ir * 0.45, k) * eye)
        glint = _ellipse(qx, qy, icx + ir * 0.3, icy + ir * 0.35, ir * 0.18, ir * 0.18, k) * eye
        over(_col(1.0, 1.0, 1.0)[None], glint * 0.8)
        # brow: an arc above the eye; frown pulls the inner end down and in
        bw = _b(g["brow_w"])
        bu = (qx - cx * 1.02) / bw
        inner = (1 - side * bu).clamp(0, 2) * 0.5  # 1 at the inner end
        by = _b(g["brow_y"]) + _b(g["brow_arch"]) * (1 - bu * bu) - 0.05 * _b(p["frown"]) * inner * inner
        by = by + 0.02 * _b(p["brow_raise"]) * inner
        bt = _b(g["brow_t"]) * (1.15 - 0.35 * (bu * side).clamp(min=0))
        brow = _band(qy, by - bt * 0.5, by + bt * 0.5, k) * _sig((1 - bu.abs()) * bw * k)
        over(col["brow"], brow)
    # mouth
    my, mw, sc = _b(g["mouth_y"]), _b(g["mouth_w"]), _b(g["smile_curve"])
    u = qx / mw
    par = (1 - u * u).clamp(min=0)
    base = my + sc * u * u
    up_in = base + _b(g["gap_up"]) * par
    dn_in = base - _b(g["gap_dn"]) * par
    bow = 1 - 0.35 * torch.exp((-30.0 * u * u).clamp(min=-30.0))  # cupid's bow dip
    # a pucker also rounds the lips (fuller towards the corners): a shape that no mouth width or lip thickness makes,
    # so the expression is not confounded with those identity parameters (narrower + thicker alone would be)
    lip_par = par * (1 + 2.0 * _b(p["pucker"]) * (1 - par))
    up_out = up_in + _b(g["lip_up"]) * lip_par * bow + 0.004
    dn_out = dn_in - _b(g["lip_dn"]) * lip_par - 0.004
    across = _sig((1 - u.abs()) * mw * k)
    over(col["lips"], _band(qy, dn_out, up_out, k) * across)
    # pushed forward, puckered lips catch the light: a highlight on the lower lip that grows with the pucker (the
    # shape cues alone were within a fraction of a pixel of a wider mouth with thinner lips)
    shine = _ellipse(qx, qy, 0.0, my - _b(g["gap_dn"]) - 0.55 * _b(g["lip_dn"]), 0.4 * mw, 0.3 * _b(g["lip_dn"]), k)
    over(0.45 * col["lips"] + 0.55 * _col(1.0, 0.92, 0.9), shine * 0.6 * _b(p["pucker"]))
    inner = _band(qy, dn_in, up_in, k) * _sig((0.97 - u.abs()) * mw * k)
    over(_col(0.16, 0.05, 0.06)[None], inner)
    teeth = _band(qy, up_in - 0.05, up_in + 0.01, k) * inner * _sig((0.75 - u.abs()) * mw * k)
    over(_col(0.92, 0.90, 0.84)[None], teeth)
    over(_col(0.25, 0.08, 0.08)[None], _band(qy, base - 0.008, base + 0.008, k) * across * 0.6)
    # nostrils (applied only where the nose is the visible surface)
    nc, nr = g["nose_c"], g["nose_r"]
    nos = torch.zeros_like(cov)
    for side in (1.0, -1.0):
        m = _ellipse(qx, qy, side * _b(nr[:, 0]) * 0.45, _b(nc[:, 1] - nr[:, 1] * 0.55), _b(nr[:, 0]) * 0.28,
                     _b(nr[:, 1]) * 0.14, k)
        nos = nos + m
    return torch.cat([rgb, cov[:, None], nos[:, None]], 1)


def render(p: Params, gx: Tensor, gy: Tensor, features: bool = True, resolution: int | None = None) -> Tensor:
    """Render named parameters ([N] each) on the pixel grid gx, gy ([H, W], y up) -> image [N, 3, H, W] in [-1, 1].

    ``features=False`` renders the same heads without the painted eyes, brows, mouth and nostrils (the negative
    control for landmark measurements).
    """
    res = int(resolution if resolution is not None else gx.shape[-1])  # a Python int (constant under export)
    g = geometry(p)
    col = colours(p)
    s = BASE_SCALE * p["scale"]  # [N]
    k = _b(0.5 * res * s * 1.6)  # sharpness of painted edges per head unit (~1.2 px)
    sharp = 0.5 * res * s * 1.5  # ellipsoid edge sharpness (~1.5 px)
    rot = rotation(p["yaw"], p["pitch"], p["roll"])
    # rays in the head frame: q(t) = o + t d
    X = (gx[None] - _b(p["tx"])) / _b(s)
    Y = (gy[None] - _b(p["ty"])) / _b(s)
    o = tuple(X * _b(rot[:, 0, i]) + Y * _b(rot[:, 1, i]) for i in range(3))
    d = rot[:, 2, :]
    light_cam = col["light"]
    light_loc = torch.einsum("nji,nj->ni", rot, light_cam)  # R^T l
    inten = _b(col["light_intensity"])

    def shade(nrm: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        lam = nrm[0] * _b(light_loc[:, 0]) + nrm[1] * _b(light_loc[:, 1]) + nrm[2] * _b(light_loc[:, 2])
        facing = nrm[0] * _b(d[:, 0]) + nrm[1] * _b(d[:, 1]) + nrm[2] * _b(d[:, 2])
        return (0.5 + 0.55 * inten * lam.clamp(min=0)) * (0.8 + 0.2 * facing.clamp(min=0))

    vignette = 1.0 - 0.18 * (gx * gx + gy * gy)
    img = col["background"][:, :, None, None] * vignette

    # long hair volume behind the head
    hb = _Hit(o, d, g["hair_c"], g["hair_r"], sharp)
    img = _paint(img, col["hair"][:, :, None, None] * (0.75 * shade(hb.normal()))[:, None], hb.alpha)

    # shoulders and neck (unrotated body frame, lit from the front)
    ones = torch.ones_like(s)
    sh_a, sh_e = _body_hit(X, Y, (0.0, -1.78), torch.stack([1.45 * ones, 0.62 * ones], -1), sharp)
    img = _paint(img, col["shirt"][:, :, None, None] * (0.55 + 0.45 * sh_e)[:, None], sh_a)
    nk_a, nk_e = _body_hit(X, Y, (0.0, -1.0), torch.stack([0.42 * (1 + 0.12 * p["neck_width"]), 0.75 * ones], -1),
                           sharp)
    img = _paint(img, col["skin"][:, :, None, None] * (0.5 + 0.3 * nk_e)[:, None], nk_a)

    # the head: cranium and jaw blended smoothly, then nose and ears where they are in front
    cr = _Hit(o, d, g["cranium_c"], g["cranium_r"], sharp)
    jw = _Hit(o, d, g["jaw_c"], g["jaw_r"], sharp)
    wj = _sig((jw.t - cr.t) * 25.0) * _sig((jw.alpha - 0.5) * 20.0)
    wj = wj + (1 - wj) * _sig((cr.alpha - 0.5) * -20.0)
    qx, qy, qz = (_lerp(a, b, wj) for a, b in zip(cr.q, jw.q))
    nx, ny, nz = (_lerp(a, b, wj) for a, b in zip(cr.normal(), jw.normal()))
    bt = torch.where(torch.maximum(cr.alpha, jw.alpha) > 0.5, torch.maximum(cr.t, jw.t), torch.full_like(cr.t, -1e4))
    cover = (1 - cr.alpha) * (1 - jw.alpha)
    is_nose = torch.zeros_like(bt)
    not_ear = torch.ones_like(bt)
    # the two ears are one mirrored hit: rays with x < 0 are reflected onto the left ear (exact for rays that stay
    # on one side of the head's mid-plane near the ears, i.e. all of them in the yaw range)
    flip = torch.where(o[0] < 0, -torch.ones_like(o[0]), torch.ones_like(o[0]))
    ear_o = (o[0] * flip, o[1], o[2])
    ear_d = (_b(d[:, 0]) * flip, _b(d[:, 1]), _b(d[:, 2]))
    for name in ("nose", "ears"):
        if name == "nose":
            h = _Hit(o, d, g["nose_c"], g["nose_r"], sharp)
            hq, hn = h.q, h.normal()
        else:
            h = _Hit(ear_o, ear_d, g["ear_l_c"], g["ear_r"], sharp)
            hq, hn = h.q, h.normal()
            hq = (hq[0] * flip, hq[1], hq[2])
            hn = (hn[0] * flip, hn[1], hn[2])
        ht = torch.where(h.alpha > 0.5, h.t, torch.full_like(h.t, -1e4))
        sel = ht > bt
        qx, qy, qz = torch.where(sel, hq[0], qx), torch.where(sel, hq[1], qy), torch.where(sel, hq[2], qz)
        nx, ny, nz = torch.where(sel, hn[0], nx), torch.where(sel, hn[1], ny), torch.where(sel, hn[2], nz)
        fsel = sel.to(bt.dtype)
        is_nose = fsel if name == "nose" else is_nose * (1 - fsel)
        if name != "nose":
            not_ear = not_ear * (1 - fsel)
        bt = torch.maximum(bt, ht)
        cover = cover * (1 - h.alpha)
    inv = torch.rsqrt(nx * nx + ny * ny + nz * nz + 1e-8)
    nx, ny, nz = nx * inv, ny * inv, nz * inv
    alb = col["skin"][:, :, None, None] * torch.ones_like(qx)[:, None]

    # hair painted on the cranium (hairline curving down at the temples and behind)
    rxc = _b(g["cranium_r"][:, 0])
    side = qx / rxc
    hl = _b(g["hairline"]) - 0.36 * side * side - 0.6 * (0.35 - qz).clamp(min=0)
    hl = hl + 0.09 * _b(p["hair_volume"]) * side  # side-swept fringe, direction and amount per identity
    hair_amt = _b(0.8 + 0.1 * p["hair_volume"])
    hair_mask = _sig((qy - hl) * k) * (1 - is_nose) * hair_amt
    hair_tex = 0.85 + 0.15 * torch.sin(qx * 40 + qy * 6)
    alb = _paint(alb, col["hair"][:, :, None, None] * hair_tex[:, None], hair_mask)

    if features:
        size = max(16, int(round(res * TEX_FACTOR)))
        tex = feature_texture(p, g, col, size, k * (size / (res * TEX_HALF * _b(s))).clamp(max=1.0))
        grid = torch.stack([(qx - TEX_CENTER[0]) / TEX_HALF, (TEX_CENTER[1] - qy) / TEX_HALF], -1)
        smp = torch.nn.functional.grid_sample(tex, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        gate = not_ear * _sig((qz - 0.25) * k)
        face_gate = gate * (1 - is_nose)
        alb = alb * (1 - smp[:, 3:4] * face_gate[:, None]) + smp[:, :3] * face_gate[:, None]
        nose_dark = smp[:, 4] * is_nose * _sig((qz - _b(g["nose_c"][:, 2])) * k)
        alb = alb * (1 - 0.45 * nose_dark.clamp(max=1.0))[:, None]
    head = alb * shade((nx, ny, nz))[:, None]
    spec = (nx * _b(light_loc[:, 0]) + ny * _b(light_loc[:, 1]) + nz * _b(light_loc[:, 2])).clamp(min=0)
    spec = spec * spec
    spec = spec * spec
    head = head + (0.08 * spec * inten * (1 - hair_mask))[:, None]
    img = _paint(img, head, 1 - cover)
    return img.clamp(0, 1) * 2 - 1
