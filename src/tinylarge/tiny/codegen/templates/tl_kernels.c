/* tl_kernels.c: int8 kernels with TensorFlow Lite Micro's reference arithmetic (C99).
 * See tl_kernels.h for the sources. int32 sums that may overflow (accumulator + bias, the
 * left shift of a multiplier >= 1) wrap around through uint32_t, as on the device, without
 * signed-overflow undefined behaviour. */
#include "tl_kernels.h"

static int32_t tl_wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t tl_clamp(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

int32_t tl_srdhm(int32_t a, int32_t b) {
    const int overflow = a == b && a == INT32_MIN;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    const int32_t high = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    return overflow ? INT32_MAX : high;
}

int32_t tl_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t tl_mbqm(int32_t x, int32_t quantized_multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return tl_rdbpot(tl_srdhm(shifted, quantized_multiplier), right);
}

void tl_conv(const tl_conv_params *p, const int8_t *in, const int8_t *weight,
             const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *out) {
    /* Parameters copied to locals: int8_t stores may alias *p, which would force reloads. */
    const int32_t in_h = p->in_h, in_w = p->in_w, out_c = p->out_c, out_h = p->out_h;
    const int32_t out_w = p->out_w, k_h = p->k_h, k_w = p->k_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, in_offset = p->in_offset;
    const int32_t out_offset = p->out_offset, act_min = p->act_min, act_max = p->act_max;
    const int32_t in_per_group = p->in_c / p->groups;
    const int32_t out_per_group = out_c / p->groups;
    const int32_t taps = k_h * k_w;
    const int32_t in_plane = in_h * in_w;
    int32_t oc, oy, ox, ic, ky, kx;
    for (oc = 0; oc < out_c; ++oc) {
        const int8_t *in_group = in + (oc / out_per_group) * in_per_group * in_plane;
        const int8_t *w_oc = weight + oc * in_per_group * taps;
        const int32_t b = bias[oc], m = multiplier[oc], s = shift[oc];
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * stride_h - pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = in_h - iy0 < k_h ? in_h - iy0 : k_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * stride_w - pad_w;
                const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                const int32_t kx_hi = in_w - ix0 < k_w ? in_w - ix0 : k_w;
                int32_t acc = 0;
                for (ic = 0; ic < in_per_group; ++ic) {
                    const int8_t *x_ic = in_group + ic * in_plane;
                    const int8_t *w_ic = w_oc + ic * taps;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        const int8_t *x_row = x_ic + (iy0 + ky) * in_w + ix0;
                        const int8_t *w_row = w_ic + ky * k_w;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += w_row[kx] * (x_row[kx] + in_offset);
                        }
                    }
                }
                acc = tl_mbqm(tl_wrap_add(acc, b), m, s);
                acc = tl_clamp(acc + out_offset, act_min, act_max);
                out[(oc * out_h + oy) * out_w + ox] = (int8_t)acc;
            }
        }
    }
}

void tl_linear(const tl_linear_params *p, const int8_t *in, const int8_t *weight,
               const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
               int8_t *out) {
    const int32_t n_in = p->in_features, n_out = p->out_features, in_offset = p->in_offset;
    const int32_t out_offset = p->out_offset, act_min = p->act_min, act_max = p->act_max;
    int32_t o, i;
    for (o = 0; o < n_out; ++o) {
        const int8_t *w = weight + o * n_in;
        int32_t acc = 0;
        for (i = 0; i < n_in; ++i) {
            acc += w[i] * (in[i] + in_offset);
        }
        acc = tl_mbqm(tl_wrap_add(acc, bias[o]), multiplier[o], shift[o]);
        out[o] = (int8_t)tl_clamp(acc + out_offset, act_min, act_max);
    }
}

void tl_max_pool(const tl_pool_params *p, const int8_t *in, int8_t *out) {
    const int32_t channels = p->channels, in_w = p->in_w, plane = p->in_h * p->in_w;
    const int32_t out_h = p->out_h, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    int32_t c, oy, ox, ky, kx;
    for (c = 0; c < channels; ++c) {
        const int8_t *x = in + c * plane;
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                const int8_t *window = x + oy * stride_h * in_w + ox * stride_w;
                int32_t best = -128;
                for (ky = 0; ky < k_h; ++ky) {
                    for (kx = 0; kx < k_w; ++kx) {
                        const int32_t v = window[ky * in_w + kx];
                        best = v > best ? v : best;
                    }
                }
                *out++ = (int8_t)best;
            }
        }
    }
}

void tl_avg_pool(const tl_pool_params *p, const int8_t *in, int8_t *out) {
    const int32_t channels = p->channels, in_w = p->in_w, plane = p->in_h * p->in_w;
    const int32_t out_h = p->out_h, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, count = k_h * k_w;
    int32_t c, oy, ox, ky, kx;
    for (c = 0; c < channels; ++c) {
        const int8_t *x = in + c * plane;
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                const int8_t *window = x + oy * stride_h * in_w + ox * stride_w;
                int32_t acc = 0;
                for (ky = 0; ky < k_h; ++ky) {
                    for (kx = 0; kx < k_w; ++kx) {
                        acc += window[ky * in_w + kx];
                    }
                }
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                *out++ = (int8_t)tl_clamp(acc, -128, 127);
            }
        }
    }
}

void tl_relu(int32_t size, int32_t zero_point, const int8_t *in, int8_t *out) {
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t v = in[i];
        out[i] = (int8_t)(v < zero_point ? zero_point : v);
    }
}

void tl_add(const tl_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    const tl_add_params q = *p; /* a local copy: int8_t stores may alias *p */
    int32_t i;
    for (i = 0; i < q.size; ++i) {
        const int32_t shifted1 = (in1[i] + q.in1_offset) * (1 << q.left_shift);
        const int32_t shifted2 = (in2[i] + q.in2_offset) * (1 << q.left_shift);
        const int32_t scaled1 = tl_mbqm(shifted1, q.in1_multiplier, q.in1_shift);
        const int32_t scaled2 = tl_mbqm(shifted2, q.in2_multiplier, q.in2_shift);
        const int32_t raw = tl_mbqm(scaled1 + scaled2, q.out_multiplier, q.out_shift);
        out[i] = (int8_t)tl_clamp(raw + q.out_offset, q.act_min, q.act_max);
    }
}
