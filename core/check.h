// CHECK stays on in release builds: it guards invariants whose violation would corrupt
// data (a revision going backwards, a merge that is not idempotent). DCHECK is for
// expensive checks and compiles out with NDEBUG.
#ifndef GEOETCD_CORE_CHECK_H_
#define GEOETCD_CORE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define GEOETCD_CHECK_FAIL(cond_text)                                                    \
  do {                                                                                    \
    std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, cond_text);    \
    std::abort();                                                                         \
  } while (0)

#define CHECK(cond)                                   \
  do {                                                \
    if (__builtin_expect(!(cond), 0)) GEOETCD_CHECK_FAIL(#cond); \
  } while (0)

#ifdef NDEBUG
#define DCHECK(cond) \
  do {               \
  } while (0)
#else
#define DCHECK(cond) CHECK(cond)
#endif

#endif  // GEOETCD_CORE_CHECK_H_
