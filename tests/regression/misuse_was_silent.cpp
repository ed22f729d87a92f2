// Regression (0.1): misuse that corrupted silently. A StopHandle used after
// its Server was gone wrote 0x01 into whatever file had reused the pipe's fd
// number; Loop::finish() twice returned an empty carry; a moved-from Server
// crashed with SIGSEGV. Now a handle shares what it writes to, and misuse
// trips IPC_HPP_CONFIG_ASSERT (a message, then abort()).
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

TEST_SUITE("regression") {

TEST_CASE("regression: a StopHandle that outlives its Server writes to no other file") {
    TempDir dir;
    ipc::Ipc ipc(test_config(dir.path()));
    ipc::StopHandle handle;
    {
        auto server = ipc.listen(name_of("srv"));
        REQUIRE(server.has_value());
        handle = server->stop_handle();
    }
    int p[2];  // reuses the lowest free fds: 0.1's pipe numbers
    REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    handle.request();
    handle();
    CHECK(handle.requested());
    char b;
    CHECK(::read(p[0], &b, 1) == -1);  // nothing arrived in the new pipe
    CHECK(errno == EAGAIN);
    ::close(p[0]);
    ::close(p[1]);
}

TEST_CASE("regression: Loop::finish() twice, and moved-from Server, Loop and Process, trip the assertion") {
    TempDir dir;
    const std::string path = dir.path();
    CHECK(outcome_of_misuse([&] {
              ipc::Ipc ipc(test_config(path));
              auto server = ipc.listen(name_of("a"));
              auto loop = server->start(0, CommandReducer{});
              (void)loop->finish();
              (void)loop->finish();  // 0.1: an empty carry, silently
          }).find("abort: ipc.hpp: Server::Loop::finish() called twice") == 0);
    CHECK(outcome_of_misuse([&] {
              ipc::Ipc ipc(test_config(path));
              auto server = ipc.listen(name_of("b"));
              ipc::Server moved = std::move(server).value();
              (void)server->stop_handle();  // 0.1: SIGSEGV
          }).find("abort: ipc.hpp: use of a moved-from Server") == 0);
    CHECK(outcome_of_misuse([&] {
              ipc::Ipc ipc(test_config(path));
              auto server = ipc.listen(name_of("c"));
              auto loop = server->start(0, CommandReducer{});
              auto moved = std::move(loop).value();
              loop->step();
          }).find("abort: ipc.hpp: use of a moved-from Server::Loop") == 0);
    CHECK(outcome_of_misuse([&] {
              ipc::Ipc ipc(test_config(path));
              const ipc::Name name = name_of("d");
              ThreadServer<int> server(ipc, name, 0, CommandReducer{});
              if (!wait_live(ipc, name)) return;
              auto p = ipc.get(name);
              if (!p) return;
              ipc::Process moved = std::move(p).value();
              (void)p->send(ipc::Message::text("x"));
          }).find("abort: ipc.hpp: use of a moved-from Process") == 0);
    // Used rightly, none of them aborts.
    CHECK(outcome_of_misuse([&] {
              ipc::Ipc ipc(test_config(path));
              auto server = ipc.listen(name_of("e"));
              auto loop = server->start(0, CommandReducer{});
              (void)loop->finish();
          }) == "exit 0");
}

}  // TEST_SUITE
