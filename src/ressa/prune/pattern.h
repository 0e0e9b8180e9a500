// Pruning configuration vocabulary: sparsity pattern (unstructured ratio or N:M), method and
// granularity enums, each with parse/to_string in one place. Torch-free.
#pragma once
#include <string>

namespace ressa::prune {

// What to prune. Unstructured: a fraction `ratio` of the weights is zeroed.
// N:M: in every group of M consecutive input weights of a row, N are ZERO (2:4 keeps 2 of 4);
// for N:M, `ratio` is set to n/m (the resulting sparsity) for convenience.
struct SparsityPattern {
  enum class Kind { Unstructured, NM } kind = Kind::Unstructured;
  double ratio = 0;  // fraction pruned, in [0, 1)
  int n = 0, m = 0;  // N:M only: 0 < n < m

  static SparsityPattern unstructured(double ratio);  // throws invalid_argument unless 0<=ratio<1
  static SparsityPattern nm(int n, int m);            // throws invalid_argument unless 0<n<m
  static SparsityPattern parse(const std::string& s);  // "0.5" -> unstructured, "2:4" -> N:M
  std::string to_string() const;                       // inverse of parse ("0.5", "2:4")
  bool is_dense() const { return kind == Kind::Unstructured && ratio == 0; }
  bool is_nm() const { return kind == Kind::NM; }
};

enum class Method { Magnitude, Wanda, SparseGPT, DSnoT };
Method parse_method(const std::string& s);  // "magnitude", "wanda", "sparsegpt", "dsnot"
std::string to_string(Method m);

// Where the unstructured quota applies: each output row gets exactly floor(ratio*d_in) zeros
// (Row, the Wanda paper) or the whole matrix gets floor(ratio*numel) (Matrix, one threshold).
// N:M is always per row group and ignores it.
enum class Granularity { Row, Matrix };
Granularity parse_granularity(const std::string& s);  // "row", "matrix"
std::string to_string(Granularity g);

}  // namespace ressa::prune
