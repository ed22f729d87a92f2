// The version macros, the versioned inline namespace and meson's project
// version say the same thing. Two vendored copies of different versions
// cannot then silently merge: their symbols live in different inline
// namespaces (ipc_hpp::v0_1 vs ipc_hpp::v0_2), so mixing them is a link
// error, not an ODR violation (tests/consumer/run.sh checks that link error).
#include "ipc.hpp"

#include <doctest/doctest.h>

#include <string>
#include <type_traits>
#include <typeinfo>

// ipc_hpp::v<MAJOR>_<MINOR>, built from the macros.
#define IPC_TEST_NS_CAT(major, minor) v##major##_##minor
#define IPC_TEST_NS(major, minor) IPC_TEST_NS_CAT(major, minor)
#define IPC_TEST_VERSIONED ipc_hpp::IPC_TEST_NS(IPC_HPP_VERSION_MAJOR, IPC_HPP_VERSION_MINOR)

// The macros are integers usable in #if.
#if !defined(IPC_HPP_VERSION_MAJOR) || !defined(IPC_HPP_VERSION_MINOR) || !defined(IPC_HPP_VERSION_PATCH)
#error "ipc.hpp must define IPC_HPP_VERSION_MAJOR, _MINOR and _PATCH"
#endif
#if IPC_HPP_VERSION != IPC_HPP_VERSION_MAJOR * 10000 + IPC_HPP_VERSION_MINOR * 100 + IPC_HPP_VERSION_PATCH
#error "IPC_HPP_VERSION disagrees with IPC_HPP_VERSION_MAJOR/MINOR/PATCH"
#endif

// Fails to compile (no such namespace) when the macros move on and the
// namespace does not.
namespace ipc_test_version = IPC_TEST_VERSIONED;

// The namespace named by the macros is the inline one: what users write as
// ipc_hpp::X is that namespace's X, for every public type.
static_assert(std::is_same<ipc_hpp::Message, ipc_test_version::Message>::value, "ipc_hpp::Message is not in the versioned inline namespace");
static_assert(std::is_same<ipc_hpp::Decoder, ipc_test_version::Decoder>::value, "Decoder");
static_assert(std::is_same<ipc_hpp::Error, ipc_test_version::Error>::value, "Error");
static_assert(std::is_same<ipc_hpp::Result<int>, ipc_test_version::Either<int, ipc_test_version::Error>>::value, "Result");
static_assert(std::is_same<ipc_hpp::Ipc, ipc_test_version::Ipc>::value, "Ipc");
static_assert(std::is_same<ipc_hpp::Server, ipc_test_version::Server>::value, "Server");
static_assert(std::is_same<ipc_hpp::Process, ipc_test_version::Process>::value, "Process");
static_assert(std::is_same<ipc_hpp::Continuation<int>, ipc_test_version::Continuation<int>>::value, "Continuation");

TEST_SUITE("version") {

TEST_CASE("version: macros, versioned inline namespace and meson's project version agree") {
    // The symbols carry the inline namespace: the mangled name (Itanium ABI,
    // GCC and Clang) of ipc_hpp::Message is N7ipc_hpp4v0_27MessageE.
    const std::string ns = "v" + std::to_string(IPC_HPP_VERSION_MAJOR) + "_" + std::to_string(IPC_HPP_VERSION_MINOR);
    const std::string mangled = typeid(ipc_hpp::Message).name();
    CHECK(mangled.find("7ipc_hpp" + std::to_string(ns.size()) + ns + "7Message") != std::string::npos);
    CHECK(IPC_HPP_VERSION == IPC_HPP_VERSION_MAJOR * 10000 + IPC_HPP_VERSION_MINOR * 100 + IPC_HPP_VERSION_PATCH);
#ifdef IPC_HPP_PROJECT_VERSION
    // meson.build reads the version from the header; check it read it right.
    const std::string header = std::to_string(IPC_HPP_VERSION_MAJOR) + "." + std::to_string(IPC_HPP_VERSION_MINOR) +
                               "." + std::to_string(IPC_HPP_VERSION_PATCH);
    CHECK(header == IPC_HPP_PROJECT_VERSION);
#endif
}

}  // TEST_SUITE
