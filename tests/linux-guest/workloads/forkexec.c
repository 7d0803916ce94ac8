/* fork + exec of a tiny static program, many times. The tiny program
 * ("tiny", next to this binary unless given as the second argument) exits
 * with a code derived from its argument. */
#include "common.h"
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int quick = quick_preset(argc, argv, "forkexec");
    uint32_t execs = quick ? 30 : 500;
    char tiny[4096];
    if (argc > 2) {
        snprintf(tiny, sizeof tiny, "%s", argv[2]);
    } else {
        snprintf(tiny, sizeof tiny, "%s", argv[0]);
        char *slash = strrchr(tiny, '/');
        snprintf(slash ? slash + 1 : tiny, sizeof tiny - (size_t)(slash ? slash + 1 - tiny : 0), "tiny");
    }
    char params[64];
    snprintf(params, sizeof params, "execs=%u", execs);

    double t0 = now_s();
    uint64_t sum = 0;
    for (uint32_t i = 0; i < execs; i++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%u", i);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            char *const av[] = {"tiny", arg, NULL};
            execv(tiny, av);
            _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) == 127) {
            fprintf(stderr, "forkexec: exec of %s failed (iteration %u)\n", tiny, i);
            return 1;
        }
        sum = mix64(sum, (uint64_t)WEXITSTATUS(st));
    }
    double t1 = now_s();
    report("forkexec", params, sum, t1 - t0);
    return 0;
}
