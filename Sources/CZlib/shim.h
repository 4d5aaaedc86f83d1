#ifndef LBSCOPE_CZLIB_SHIM_H
#define LBSCOPE_CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit2/inflateInit2 are macros over the _ functions; Swift cannot call macros. */
static inline int lbscope_deflate_init_gzip(z_stream *stream, int level) {
  return deflateInit2(stream, level, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8, Z_DEFAULT_STRATEGY);
}
static inline int lbscope_inflate_init_gzip(z_stream *stream) {
  return inflateInit2(stream, 15 + 16 /* gzip wrapper only */);
}
#endif
