/* clubstack contest harness: one process calls the submitted function for every vector.
 *
 * stdin : u32 filter_len, filter_len bytes of seccomp cBPF (struct sock_filter[]),
 *         u32 count, u32 per-call CPU limit in ms, count * IN_LEN input bytes.
 * stdout: one line per completed call: "<hex output> <cpu ns> <max rss KiB>\n", then "end\n".
 *
 * Every system call of the harness is a raw `syscall` instruction in a static function, so a
 * submission cannot interpose a libc symbol (read, write, clock_gettime ...) to fake a
 * measurement or skip the seccomp filter. The filter is installed before the first call of
 * submitted code; the per-call CPU limit is an ITIMER_PROF whose SIGPROF ends the process.
 * Compile with -DKIND_AES or -DKIND_ECDSA.
 */
#include <stddef.h>
#include <stdint.h>

#if defined(KIND_AES)
#define IN_LEN 16
#define OUT_LEN 16
void AES_128_encrypt(unsigned char ciphertext[16], unsigned char plaintext[16]);
#elif defined(KIND_ECDSA)
#define IN_LEN 32
#define OUT_LEN 64
void ECDSA_256_sign(unsigned char sig[64], const unsigned char hash[32]);
#else
#error "define KIND_AES or KIND_ECDSA"
#endif

#define MAX_VECTORS 4096
#define MAX_FILTER 4096

static long hsys(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

#define H_READ 0
#define H_WRITE 1
#define H_SETITIMER 38
#define H_GETRUSAGE 98
#define H_CLOCK_GETTIME 228
#define H_EXIT_GROUP 231
#define H_SECCOMP 317

struct h_timespec { long sec; long nsec; };
struct h_timeval { long sec; long usec; };
struct h_itimerval { struct h_timeval interval; struct h_timeval value; };
struct h_rusage { struct h_timeval utime, stime; long maxrss, rest[13]; };
struct h_sock_fprog { unsigned short len; void *filter; };

static unsigned char inputs[MAX_VECTORS * IN_LEN];
static unsigned char filter[MAX_FILTER * 8];

static void h_exit(int code) { hsys(H_EXIT_GROUP, code, 0, 0); for (;;) {} }

static void h_write_all(const char *buf, long len) {
    while (len > 0) {
        long n = hsys(H_WRITE, 1, (long)buf, len);
        if (n <= 0) h_exit(4);
        buf += n; len -= n;
    }
}

static void h_fail(const char *msg) {
    long len = 0;
    while (msg[len]) len++;
    hsys(H_WRITE, 2, (long)msg, len);
    h_exit(3);
}

static void h_read_exact(unsigned char *buf, long len) {
    while (len > 0) {
        long n = hsys(H_READ, 0, (long)buf, len);
        if (n <= 0) h_fail("harness: short input\n");
        buf += n; len -= n;
    }
}

static uint32_t h_read_u32(void) {
    unsigned char b[4];
    h_read_exact(b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static long h_cpu_ns(void) {
    struct h_timespec ts;
    /* the thread clock: with ITIMER_PROF armed the process clock only advances at ticks */
    hsys(H_CLOCK_GETTIME, 3 /* CLOCK_THREAD_CPUTIME_ID */, (long)&ts, 0);
    return ts.sec * 1000000000L + ts.nsec;
}

static long h_maxrss_kib(void) {
    struct h_rusage ru;
    hsys(H_GETRUSAGE, 0 /* RUSAGE_SELF */, (long)&ru, 0);
    return ru.maxrss;
}

static void h_timer(long ms) {
    struct h_itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    hsys(H_SETITIMER, 2 /* ITIMER_PROF */, (long)&it, 0);
}

static char *h_put_dec(char *p, long v) {
    char tmp[24];
    int n = 0;
    if (v < 0) v = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

int main(void) {
    static const char hex[] = "0123456789abcdef";
    uint32_t flen = h_read_u32();
    if (flen == 0 || flen > sizeof filter || flen % 8) h_fail("harness: bad filter\n");
    h_read_exact(filter, flen);
    uint32_t count = h_read_u32();
    uint32_t limit_ms = h_read_u32();
    if (count > MAX_VECTORS) h_fail("harness: too many vectors\n");
    h_read_exact(inputs, (long)count * IN_LEN);

    struct h_sock_fprog prog = {(unsigned short)(flen / 8), filter};
    if (hsys(H_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, 0, (long)&prog) != 0)
        h_fail("harness: cannot install the seccomp filter\n");

    for (uint32_t i = 0; i < count; i++) {
        unsigned char in[IN_LEN], out[OUT_LEN];
        char line[2 * OUT_LEN + 64];
        for (int j = 0; j < IN_LEN; j++) in[j] = inputs[(size_t)i * IN_LEN + j];
        for (int j = 0; j < OUT_LEN; j++) out[j] = 0;
        h_timer(limit_ms);
        long t0 = h_cpu_ns();
#if defined(KIND_AES)
        AES_128_encrypt(out, in);
#else
        ECDSA_256_sign(out, in);
#endif
        long t1 = h_cpu_ns();
        h_timer(0);
        char *p = line;
        for (int j = 0; j < OUT_LEN; j++) { *p++ = hex[out[j] >> 4]; *p++ = hex[out[j] & 15]; }
        *p++ = ' ';
        p = h_put_dec(p, t1 - t0);
        *p++ = ' ';
        p = h_put_dec(p, h_maxrss_kib());
        *p++ = '\n';
        h_write_all(line, p - line);
    }
    h_write_all("end\n", 4);
    h_exit(0);
    return 0;
}
