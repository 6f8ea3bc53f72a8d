/*
 * tests/unit/test_exit.c - the exit policy (hcrt/exit.h): every status maps to a documented exit status,
 * restartable ones are exactly the failures a relaunch may cure, and names round-trip.
 */
#include <string.h>

#include "hcrt/hcrt.h"
#include "test.h"

int main(void)
{
    /* Every status code maps to an exit status of the table (never UNKNOWN), and only HCRT_OK to 0. */
    for (int i = 0; i < HCRT_STATUS_COUNT; i++) {
        hcrt_status_t s = (hcrt_status_t)-i;
        int code = hcrt_exit_status(s);
        CHECK_MSG(strcmp(hcrt_exit_name(code), "UNKNOWN") != 0, "%s maps to undocumented exit status %d",
                  hcrt_status_name(s), code);
        CHECK_MSG((code == 0) == (s == HCRT_OK), "%s maps to exit status %d", hcrt_status_name(s), code);
    }
    CHECK(hcrt_exit_status((hcrt_status_t)-1000) == HCRT_EXIT_INTERNAL);

    /* Failures a relaunch may cure. */
    CHECK(hcrt_exit_status(HCRT_ERR_TIMEOUT) == 124 && hcrt_exit_restartable(124));
    CHECK(hcrt_exit_restartable(HCRT_EXIT_PEER_DEAD) && HCRT_EXIT_PEER_DEAD == 125);
    CHECK(hcrt_exit_status(HCRT_ERR_PEER_DEAD) == HCRT_EXIT_PEER_DEAD);
    CHECK(hcrt_exit_status(HCRT_ERR_DEVICE_LOST) == HCRT_EXIT_DEVICE && HCRT_EXIT_DEVICE == 121);
    CHECK(hcrt_exit_status(HCRT_ERR_IO) == HCRT_EXIT_CKPT_IO && HCRT_EXIT_CKPT_IO == 122);
    CHECK(hcrt_exit_status(HCRT_ERR_MPI) == HCRT_EXIT_MPI && HCRT_EXIT_MPI == 123);
    CHECK(hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_DEVICE_LOST)));
    CHECK(hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_BACKEND)));
    CHECK(hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_IO)));
    CHECK(hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_MPI)));
    CHECK(hcrt_exit_restartable(HCRT_EXIT_PREEMPTED));
    CHECK(hcrt_exit_restartable(128 + 9) && strcmp(hcrt_exit_name(137), "SIGNAL") == 0);
    CHECK(hcrt_exit_restartable(205) && strcmp(hcrt_exit_name(205), "NODE_LOST") == 0);

    /* Failures a relaunch would only repeat. */
    CHECK(!hcrt_exit_restartable(0));
    CHECK(!hcrt_exit_restartable(1));
    CHECK(!hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_INVALID_ARG)));
    CHECK(!hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_MISMATCH)));
    CHECK(!hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_CONFIG)));
    CHECK(!hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_DEVICE_OOM)));
    CHECK(!hcrt_exit_restartable(hcrt_exit_status(HCRT_ERR_INTERNAL)));
    CHECK(!hcrt_exit_restartable(HCRT_EXIT_USAGE));
    CHECK(!hcrt_exit_restartable(128) && !hcrt_exit_restartable(-1) && !hcrt_exit_restartable(255));

    CHECK(strcmp(hcrt_exit_name(HCRT_EXIT_TIMEOUT), "TIMEOUT") == 0);
    CHECK(strcmp(hcrt_exit_name(HCRT_EXIT_CKPT_IO), "CKPT_IO") == 0);
    CHECK(strcmp(hcrt_exit_name(77), "UNKNOWN") == 0);
    TEST_DONE();
}
