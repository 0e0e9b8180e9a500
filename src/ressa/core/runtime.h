// Process-wide compute setup facts that do not need torch: which BLAS library serves sgemm_,
// and the default thread count (all cores, no oversubscription).
#pragma once
#include <string>

namespace ressa {

// Path of the shared object that provides the BLAS symbol sgemm_ in this process ("" if none).
std::string blas_library_path();
// True when that library is the slow Netlib reference BLAS (Debian's libblas3 without OpenBLAS).
bool blas_is_reference();
// Number of hardware threads (>= 1).
int hardware_threads();

}  // namespace ressa
