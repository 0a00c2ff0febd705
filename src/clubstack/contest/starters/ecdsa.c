#include <gmp.h>
/* Starter program for an ECDSA challenge (WhibOx edition 3): NIST P-256 signatures.
 *
 * Define exactly this function; the server calls it once per test vector, each call in a
 * fresh process, under a strict system-call filter (read, write, memory, exit):
 *
 *     void ECDSA_256_sign(unsigned char sig[64], const unsigned char hash[32]);
 *
 * sig is r || s, 32 bytes each, big-endian; hash is the 32-byte message digest. The first
 * line may include GMP (the only header allowed); the program is linked with -lgmp.
 * This starter is affine double-and-add with the private key D_HEX in the clear and a nonce
 * derived from the hash: accepted, and broken at once. Hide the key.
 * Before submitting, make the public key and the proof of knowledge of D_HEX:
 *     clubstack contest prove <D_HEX>
 * and check it: clubstack contest judge ecdsa_starter.c --kind ecdsa --pubkey .. --proof ..
 */

static const char *P_HEX = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
static const char *N_HEX = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
static const char *GX_HEX = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
static const char *GY_HEX = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
static const char *D_HEX = "c477f9f65c22cce20657faa5b2d1d8122336f851a508a1ed04e479c34985bf96";
static const char *A_HEX = "1f2e3d4c5b6a79880123456789abcdeffedcba98765432100f1e2d3c4b5a6978";
static const char *B_HEX = "0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829";

static mpz_t p, n, gx, gy, d, ka, kb;
static int ready;

static void setup(void) {
    mpz_init_set_str(p, P_HEX, 16);
    mpz_init_set_str(n, N_HEX, 16);
    mpz_init_set_str(gx, GX_HEX, 16);
    mpz_init_set_str(gy, GY_HEX, 16);
    mpz_init_set_str(d, D_HEX, 16);
    mpz_init_set_str(ka, A_HEX, 16);
    mpz_init_set_str(kb, B_HEX, 16);
    ready = 1;
}

/* (x1,y1,inf1) += (x2,y2); a = -3 */
static void point_add(mpz_t x1, mpz_t y1, int *inf1, const mpz_t x2, const mpz_t y2) {
    mpz_t l, t, x3;
    if (*inf1) { mpz_set(x1, x2); mpz_set(y1, y2); *inf1 = 0; return; }
    mpz_inits(l, t, x3, NULL);
    if (mpz_cmp(x1, x2) == 0) {
        mpz_add(t, y1, y2);
        mpz_mod(t, t, p);
        if (mpz_sgn(t) == 0) { *inf1 = 1; mpz_clears(l, t, x3, NULL); return; }
        mpz_mul(l, x1, x1);
        mpz_mul_ui(l, l, 3);
        mpz_sub_ui(l, l, 3);
        mpz_mul_ui(t, y1, 2);
    } else {
        mpz_sub(l, y2, y1);
        mpz_sub(t, x2, x1);
    }
    mpz_mod(t, t, p);
    mpz_invert(t, t, p);
    mpz_mul(l, l, t);
    mpz_mod(l, l, p);
    mpz_mul(x3, l, l);
    mpz_sub(x3, x3, x1);
    mpz_sub(x3, x3, x2);
    mpz_mod(x3, x3, p);
    mpz_sub(t, x1, x3);
    mpz_mul(t, t, l);
    mpz_sub(t, t, y1);
    mpz_mod(y1, t, p);
    mpz_set(x1, x3);
    mpz_clears(l, t, x3, NULL);
}

static void scalar_mult_x(mpz_t rx, const mpz_t k) {
    mpz_t x, y, bx, by;
    int inf = 1;
    mpz_inits(x, y, NULL);
    mpz_init_set(bx, gx);
    mpz_init_set(by, gy);
    for (long i = (long)mpz_sizeinbase(k, 2) - 1; i >= 0; i--) {
        if (!inf) {
            mpz_t cx, cy;
            mpz_init_set(cx, x);
            mpz_init_set(cy, y);
            point_add(x, y, &inf, cx, cy);
            mpz_clears(cx, cy, NULL);
        }
        if (mpz_tstbit(k, (mp_bitcnt_t)i)) point_add(x, y, &inf, bx, by);
    }
    mpz_set(rx, x);
    mpz_clears(x, y, bx, by, NULL);
}

static void put32(unsigned char *out, const mpz_t v) {
    unsigned char buf[32];
    size_t count = 0;
    for (int i = 0; i < 32; i++) { buf[i] = 0; out[i] = 0; }
    mpz_export(buf, &count, 1, 1, 1, 0, v);
    for (size_t i = 0; i < count; i++) out[32 - count + i] = buf[i];
}

void ECDSA_256_sign(unsigned char sig[64], const unsigned char hash[32]) {
    mpz_t e, k, r, s;
    if (!ready) setup();
    mpz_inits(e, k, r, s, NULL);
    mpz_import(e, 32, 1, 1, 1, 0, hash);
    mpz_mul(k, ka, e);
    mpz_add(k, k, kb);
    mpz_mod(k, k, n);
    if (mpz_sgn(k) == 0) mpz_set_ui(k, 1);
    scalar_mult_x(r, k);
    mpz_mod(r, r, n);
    mpz_mul(s, r, d);
    mpz_add(s, s, e);
    mpz_invert(k, k, n);
    mpz_mul(s, s, k);
    mpz_mod(s, s, n);
    put32(sig, r);
    put32(sig + 32, s);
    mpz_clears(e, k, r, s, NULL);
}
