/* clubstack contest harness: one process per call of the submitted function, as the
 * reference server does, measured by the kernel.
 *
 * stdin : u32 filter_len, filter_len bytes of seccomp cBPF (struct sock_filter[]),
 *         u32 count, u32 per-call CPU limit in ms, u32 per-call wall-clock limit in ms,
 *         count * IN_LEN input bytes.
 * stdout: one line per completed call: "<hex output> <cpu ns> <max rss KiB>\n"; at the first
 *         call that does not complete, "fail <call> <what> <value>\n" (what: signal, exit,
 *         output); then "end\n".
 *
 * The parent never runs submitted code. For every call it forks a child that points its
 * stdout at a pipe, closes stderr, arms ITIMER_PROF (CPU) and ITIMER_REAL (wall clock),
 * installs the strict seccomp filter (no setitimer: the timers cannot be disarmed) and only
 * then calls the function once, writes the output bytes to the pipe and exits. The parent
 * reads those bytes and takes the call's CPU time and peak memory from wait4's rusage, i.e.
 * from the kernel: nothing the submission can write reaches stdout.
 * Every system call of the harness is a raw `syscall` instruction in a static function.
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

static long hsys(long n, long a, long b, long c, long d) {
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

#define H_READ 0
#define H_WRITE 1
#define H_CLOSE 3
#define H_DUP2 33
#define H_SETITIMER 38
#define H_FORK 57
#define H_WAIT4 61
#define H_KILL 62
#define H_EXIT_GROUP 231
#define H_PIPE2 293
#define H_SECCOMP 317
#define H_EINTR 4

struct h_timeval { long sec; long usec; };
struct h_itimerval { struct h_timeval interval; struct h_timeval value; };
struct h_rusage { struct h_timeval utime, stime; long maxrss, rest[13]; };
struct h_sock_fprog { unsigned short len; void *filter; };

static unsigned char inputs[MAX_VECTORS * IN_LEN];
static unsigned char filter[MAX_FILTER * 8];
static uint32_t filter_len;

static void h_exit(int code) { hsys(H_EXIT_GROUP, code, 0, 0, 0); for (;;) {} }

static void h_write_all(int fd, const char *buf, long len) {
    while (len > 0) {
        long n = hsys(H_WRITE, fd, (long)buf, len, 0);
        if (n == -H_EINTR) continue;
        if (n <= 0) h_exit(4);
        buf += n; len -= n;
    }
}

static void h_fail(const char *msg) {
    long len = 0;
    while (msg[len]) len++;
    hsys(H_WRITE, 2, (long)msg, len, 0);
    h_exit(3);
}

static void h_read_exact(unsigned char *buf, long len) {
    while (len > 0) {
        long n = hsys(H_READ, 0, (long)buf, len, 0);
        if (n <= 0) h_fail("harness: short input\n");
        buf += n; len -= n;
    }
}

static uint32_t h_read_u32(void) {
    unsigned char b[4];
    h_read_exact(b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void h_timer(int which, long ms) {
    struct h_itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    hsys(H_SETITIMER, which, (long)&it, 0, 0);
}

static char *h_put_dec(char *p, long v) {
    char tmp[24];
    int n = 0;
    if (v < 0) v = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static char *h_put_str(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

/* The child: never returns. */
static void h_call(int out_fd, const unsigned char *input, uint32_t cpu_ms, uint32_t wall_ms) {
    unsigned char in[IN_LEN], out[OUT_LEN];
    for (int j = 0; j < IN_LEN; j++) in[j] = input[j];
    for (int j = 0; j < OUT_LEN; j++) out[j] = 0;
    if (hsys(H_DUP2, out_fd, 1, 0, 0) != 1) h_exit(5);
    hsys(H_CLOSE, out_fd, 0, 0, 0);
    hsys(H_CLOSE, 2, 0, 0, 0);
    h_timer(2 /* ITIMER_PROF */, cpu_ms);
    h_timer(0 /* ITIMER_REAL */, wall_ms);
    struct h_sock_fprog prog = {(unsigned short)(filter_len / 8), filter};
    if (hsys(H_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, 0, (long)&prog, 0) != 0) h_exit(6);
#if defined(KIND_AES)
    AES_128_encrypt(out, in);
#else
    ECDSA_256_sign(out, in);
#endif
    h_write_all(1, (const char *)out, OUT_LEN);
    h_exit(0);
}

int main(void) {
    static const char hex[] = "0123456789abcdef";
    filter_len = h_read_u32();
    if (filter_len == 0 || filter_len > sizeof filter || filter_len % 8)
        h_fail("harness: bad filter\n");
    h_read_exact(filter, filter_len);
    uint32_t count = h_read_u32();
    uint32_t cpu_ms = h_read_u32();
    uint32_t wall_ms = h_read_u32();
    if (count > MAX_VECTORS) h_fail("harness: too many vectors\n");
    h_read_exact(inputs, (long)count * IN_LEN);

    for (uint32_t i = 0; i < count; i++) {
        int fds[2];
        if (hsys(H_PIPE2, (long)fds, 0, 0, 0) != 0) h_fail("harness: pipe\n");
        long pid = hsys(H_FORK, 0, 0, 0, 0);
        if (pid < 0) h_fail("harness: fork\n");
        if (pid == 0) {
            hsys(H_CLOSE, fds[0], 0, 0, 0);
            h_call(fds[1], inputs + (size_t)i * IN_LEN, cpu_ms, wall_ms);
        }
        hsys(H_CLOSE, fds[1], 0, 0, 0);
        unsigned char out[OUT_LEN + 1];
        long got = 0;
        int flooded = 0;
        for (;;) {
            long n = hsys(H_READ, fds[0], (long)(out + got), (long)sizeof out - got, 0);
            if (n == -H_EINTR) continue;
            if (n <= 0) break;
            got += n;
            if (got > OUT_LEN) {  /* more than an output: stop it, do not drain it */
                flooded = 1;
                hsys(H_KILL, pid, 9 /* SIGKILL */, 0, 0);
                break;
            }
        }
        hsys(H_CLOSE, fds[0], 0, 0, 0);
        int status = 0;
        struct h_rusage ru;
        long w;
        do {
            w = hsys(H_WAIT4, pid, (long)&status, 0, (long)&ru);
        } while (w == -H_EINTR);
        if (w != pid) h_fail("harness: wait4\n");
        char line[2 * OUT_LEN + 96];
        char *p = line;
        int stop = 1;
        int sig = status & 0x7f;
        int code = (status >> 8) & 0xff;
        if (flooded || (sig == 0 && code == 0 && got != OUT_LEN)) {
            p = h_put_str(p, "fail ");
            p = h_put_dec(p, (long)i + 1);
            p = h_put_str(p, " output ");
            p = h_put_dec(p, got);
        } else if (sig != 0 || code != 0) {
            p = h_put_str(p, "fail ");
            p = h_put_dec(p, (long)i + 1);
            p = h_put_str(p, sig ? " signal " : " exit ");
            p = h_put_dec(p, sig ? sig : code);
        } else {
            stop = 0;
            long cpu_ns = (ru.utime.sec + ru.stime.sec) * 1000000000L
                          + (ru.utime.usec + ru.stime.usec) * 1000L;
            for (int j = 0; j < OUT_LEN; j++) {
                *p++ = hex[out[j] >> 4];
                *p++ = hex[out[j] & 15];
            }
            *p++ = ' ';
            p = h_put_dec(p, cpu_ns);
            *p++ = ' ';
            p = h_put_dec(p, ru.maxrss);
        }
        *p++ = '\n';
        h_write_all(1, line, p - line);
        if (stop) break;
    }
    h_write_all(1, "end\n", 4);
    h_exit(0);
    return 0;
}
