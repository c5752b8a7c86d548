// RoPE angles to fp32 rounding at any position below 2^24: the frequency of pair i is
// rebuilt as a double-float (hi, lo) from pair 0's and the ratio between pairs, and only the
// fraction of pos * freq (in turns) is kept before sin/cos. Shared by rope.comp and the fused
// decode layer (layer.comp).

// Exact product a*b = hi + lo (Dekker, Veltkamp split at 12 bits). `precise` forbids fusing
// into fma and reassociation, both of which would break the error term.
vec2 two_prod(float a, float b) {
    precise float pr = a * b;
    precise float ca = 4097.0 * a;
    precise float ah = ca - (ca - a);
    precise float al = a - ah;
    precise float cb = 4097.0 * b;
    precise float bh = cb - (cb - b);
    precise float bl = b - bh;
    precise float err = ((ah * bh - pr) + ah * bl + al * bh) + al * bl;
    return vec2(pr, err);
}

vec2 dd_mul(vec2 a, vec2 b) {
    vec2 pr = two_prod(a.x, b.x);
    precise float e = pr.y + (a.x * b.y + a.y * b.x);
    precise float s = pr.x + e;
    precise float lo = e - (s - pr.x);
    return vec2(s, lo);
}

// (sin, cos) of 2 pi t for |t| <= ~0.5 turns: exact quadrant split, then Taylor
// polynomials on |x| <= pi/4, whose truncation error is below fp32 rounding.
vec2 sincos_turns(float t) {
    float q = round(4.0 * t);
    float r = t - 0.25 * q;  // exact: both are multiples of ulp(t)
    float xr = r * 6.28318530717958647;
    float x2 = xr * xr;
    float s = xr * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0)))));
    float c = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 - x2 * (1.0 / 3628800.0)))));
    int quad = int(q) & 3;
    if (quad == 0) return vec2(s, c);
    if (quad == 1) return vec2(c, -s);
    if (quad == 2) return vec2(-s, -c);
    return vec2(-c, s);
}

// (sin, cos) of pair i at position pos; f0: turns per position of pair 0, r: the ratio of
// consecutive pairs' frequencies, both double-floats.
vec2 rope_sincos(vec2 f0, vec2 r, float pos, uint i) {
    vec2 f = f0;
    vec2 rr = r;
    for (uint e = i; e != 0; e >>= 1) {
        if ((e & 1) != 0) f = dd_mul(f, rr);
        if (e > 1) rr = dd_mul(rr, rr);
    }
    // Only the fraction of pos * f matters: drop the whole turns of the exact high product.
    vec2 ph = two_prod(pos, f.x);
    precise float whole = round(ph.x);
    precise float turns = (ph.x - whole) + (ph.y + pos * f.y);
    return sincos_turns(turns);
}
