// ipc.hpp must live beside the System V IPC headers, included before and
// after it: they define IPC_CREAT, IPC_STAT, IPC_PRIVATE... and ipc.hpp must
// neither clash with nor redefine any of them.
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include "ipc.hpp"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include <doctest/doctest.h>

TEST_SUITE("sysv_headers") {

TEST_CASE("sysv headers: ipc.hpp and <sys/ipc.h> coexist in one translation unit") {
    CHECK(IPC_PRIVATE == static_cast<key_t>(0));
    CHECK((IPC_CREAT | IPC_EXCL) != 0);
    CHECK(IPC_STAT != IPC_SET);
    CHECK(IPC_HPP_VERSION >= 100);
    CHECK(ipc_hpp::Name::parse("sysv").has_value());
}

}  // TEST_SUITE
