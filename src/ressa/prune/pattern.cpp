// Parsing, validation and printing of SparsityPattern, Method and Granularity.
#include "ressa/prune/pattern.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "ressa/core/error.h"

namespace ressa::prune {

SparsityPattern SparsityPattern::unstructured(double ratio) {
  RESSA_CHECK_ARG(std::isfinite(ratio) && ratio >= 0 && ratio < 1,
                  "[SparsityPattern::unstructured] sparsity ratio must be in [0, 1), got ", ratio);
  SparsityPattern p;
  p.kind = Kind::Unstructured;
  p.ratio = ratio;
  return p;
}

SparsityPattern SparsityPattern::nm(int n, int m) {
  RESSA_CHECK_ARG(n > 0 && m > n, "[SparsityPattern::nm] N:M needs 0 < N < M (N zeros in each group of M), got ",
                  n, ":", m);
  SparsityPattern p;
  p.kind = Kind::NM;
  p.n = n;
  p.m = m;
  p.ratio = double(n) / m;
  return p;
}

namespace {
// Parses a whole string as a non-negative int / finite double; false on any leftover text.
bool parse_int(const std::string& s, int& out) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoi(s);
  return true;
}
bool parse_double(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size();
}
}  // namespace

SparsityPattern SparsityPattern::parse(const std::string& s) {
  auto colon = s.find(':');
  if (colon != std::string::npos) {
    int n = 0, m = 0;
    RESSA_CHECK_ARG(parse_int(s.substr(0, colon), n) && parse_int(s.substr(colon + 1), m),
                    "[SparsityPattern::parse] expected N:M with integers (e.g. 2:4), got '", s, "'");
    return nm(n, m);
  }
  double r = 0;
  RESSA_CHECK_ARG(parse_double(s, r),
                  "[SparsityPattern::parse] expected a ratio in [0, 1) (e.g. 0.5) or N:M (e.g. 2:4), got '", s, "'");
  return unstructured(r);
}

std::string SparsityPattern::to_string() const {
  if (kind == Kind::NM) return std::to_string(n) + ":" + std::to_string(m);
  // Shortest decimal that parses back to the same double ("0.5", not "0.50000000000000000").
  char buf[32];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, ratio);
    if (std::strtod(buf, nullptr) == ratio) break;
  }
  return buf;
}

Method parse_method(const std::string& s) {
  if (s == "magnitude") return Method::Magnitude;
  if (s == "wanda") return Method::Wanda;
  if (s == "sparsegpt") return Method::SparseGPT;
  if (s == "dsnot") return Method::DSnoT;
  fail_arg("[parse_method] expected magnitude|wanda|sparsegpt|dsnot, got '", s, "'");
}

std::string to_string(Method m) {
  switch (m) {
    case Method::Magnitude: return "magnitude";
    case Method::Wanda: return "wanda";
    case Method::SparseGPT: return "sparsegpt";
    case Method::DSnoT: return "dsnot";
  }
  fail_arg("[to_string(Method)] invalid value ", static_cast<int>(m));
}

Granularity parse_granularity(const std::string& s) {
  if (s == "row") return Granularity::Row;
  if (s == "matrix") return Granularity::Matrix;
  fail_arg("[parse_granularity] expected row|matrix, got '", s, "'");
}

std::string to_string(Granularity g) {
  switch (g) {
    case Granularity::Row: return "row";
    case Granularity::Matrix: return "matrix";
  }
  fail_arg("[to_string(Granularity)] invalid value ", static_cast<int>(g));
}

}  // namespace ressa::prune
