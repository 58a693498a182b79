// A shared object for the debug_symbols tests: frames inside it must name this
// module, its symbols and (built with -g) its lines. No state besides the line.
extern "C" {

unsigned callback_line = 0;   // the line of the call below

__attribute__((noinline)) unsigned call_through_library(unsigned (*callback)(void**, unsigned), void** frames,
                                                        unsigned max_frames) {
  unsigned depth = callback(frames, max_frames); callback_line = __LINE__;
  return depth;
}

}
