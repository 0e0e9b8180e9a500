// ressa's version: the project version (CMakeLists.txt project()) and the source tree it was
// built from (`git describe --always --dirty`, "unknown" outside a git checkout). Defined in a
// source generated at build time by cmake/version.cmake.
#pragma once

namespace ressa {

const char* version();         // e.g. "0.5.0"
const char* git_describe();    // e.g. "da789e6a1b2c" or "da789e6a1b2c-dirty"
const char* version_string();  // "<version>+<git_describe>": what results and caches record

}  // namespace ressa
