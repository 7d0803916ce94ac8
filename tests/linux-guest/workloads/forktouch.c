/* Address-space churn: fork, the child writes one word in every page of a
 * 4 MiB buffer inherited from the parent (copy-on-write faults), exits. */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096u

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "forktouch");
    uint32_t forks = quick ? 40 : 300;
    uint32_t mib = 4;
    size_t bytes = (size_t)mib << 20;
    char params[64];
    snprintf(params, sizeof params, "forks=%u,mib=%u", forks, mib);

    double t0 = now_s();
    uint8_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < bytes; i += PAGE)
        buf[i] = (uint8_t)(i / PAGE);
    uint64_t sum = 0;
    for (uint32_t f = 0; f < forks; f++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            uint32_t acc = 0;
            for (size_t i = 0; i < bytes; i += PAGE) {
                buf[i] = (uint8_t)(buf[i] + f);
                acc += buf[i];
            }
            _exit((int)(acc & 0x7f));
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
            fprintf(stderr, "forktouch: child %u failed\n", f);
            return 1;
        }
        sum = mix64(sum, (uint64_t)WEXITSTATUS(st));
    }
    double t1 = now_s();
    report("forktouch", params, sum, t1 - t0);
    return 0;
}
