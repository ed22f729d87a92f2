// Regression (0.1): exist() and processes() matched /proc/net/unix as an
// exact string, so a server started with dir/./ipc, //dir/ipc or a relative
// path was invisible to an observer using /abs/dir/ipc; and a client
// followed a symlinked NAME.sock to an impostor that `list` did not show.
// Now the directory is resolved once to its canonical form, and a NAME.sock
// that is not a socket owned by the expected uid is not a server.
#include "../support/basics.hpp"
#include "../support/server.hpp"
#include "../support/temp.hpp"

using namespace ipc_test;

TEST_SUITE("regression") {

TEST_CASE("regression: however the directory is spelled, every observer sees the same servers") {
    Watchdog wd;
    TempDir dir;
    const std::string real = dir.file("ipc");
    REQUIRE(::mkdir(real.c_str(), 0700) == 0);
    const std::string link = dir.file("alias");
    REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
    char cwd[4096];
    REQUIRE(::getcwd(cwd, sizeof cwd) != nullptr);
    REQUIRE(::chdir(dir.path().c_str()) == 0);
    const std::vector<std::string> spellings = {dir.path() + "/./ipc", "/" + dir.path() + "//ipc/", "ipc",
                                                "./alias/../ipc", link};
    int n = 0;
    for (const auto& spelled : spellings) {
        const ipc::Name name = name_of("srv" + std::to_string(n++));
        ipc::Ipc server_side(test_config(spelled));
        CHECK(server_side.directory() == real);
        ThreadServer<int> server(server_side, name, 0, CommandReducer{});
        REQUIRE(wait_live(server_side, name));
        ipc::Ipc observer(test_config(real));
        CHECK(observer.exist(name));
        auto names = observer.processes();
        REQUIRE(names.has_value());
        REQUIRE(names->size() == 1);
        CHECK(names->front() == name);
        auto p = observer.get(name);
        REQUIRE(p.has_value());
        REQUIRE(p->close().has_value());
        REQUIRE(server.finish().has_value());
    }
    REQUIRE(::chdir(cwd) == 0);
}

TEST_CASE("regression: a NAME.sock that is a symlink to someone's socket is not a server") {
    Watchdog wd;
    TempDir dir;
    const std::string elsewhere = dir.file("elsewhere");
    const std::string mine = dir.file("mine");
    REQUIRE(::mkdir(elsewhere.c_str(), 0700) == 0);
    REQUIRE(::mkdir(mine.c_str(), 0700) == 0);
    ipc::Ipc impostor_side(test_config(elsewhere));
    ThreadServer<int> impostor(impostor_side, name_of("impostor"), 0, CommandReducer{});
    REQUIRE(wait_live(impostor_side, name_of("impostor")));
    REQUIRE(::symlink(impostor_side.path_of(name_of("impostor")).c_str(), (mine + "/srv.sock").c_str()) == 0);
    ipc::Ipc ipc(test_config(mine));
    CHECK_FALSE(ipc.exist(name_of("srv")));
    auto names = ipc.processes();
    REQUIRE(names.has_value());
    CHECK(names->empty());
    CHECK(outcome(ipc.get(name_of("srv"))) == "permission_denied");  // 0.1: talked to the impostor
    impostor.finish_expecting(0);  // nobody reached it
}

TEST_CASE_FIXTURE(Case, "regression: a server running as an unexpected uid is refused (SO_PEERCRED), even through a real socket file") {
    ThreadServer<int> server(ipc, name, 0, CommandReducer{});
    REQUIRE(wait_live(ipc, name));
    ipc::Config picky = test_config(dir.path());
    picky.expect_server_uid = ::geteuid() + 12345;  // nobody here runs as that
    ipc::Ipc client(picky);
    CHECK_FALSE(client.exist(name));
    CHECK(outcome(client.get(name)) == "permission_denied");
    REQUIRE(server.finish().has_value());
}

}  // TEST_SUITE
