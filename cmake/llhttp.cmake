# llhttp (Node's HTTP/1.1 parser) as a static library, sb_llhttp, for the HTTP server (core/httpd.c)
# the admin API and the router share. Debian ships llhttp only as C sources (node-llhttp);
# scripts/install-deps.sh unpacks the four files into /usr/local/share/scalebus/llhttp without the
# Node.js runtime node-llhttp would pull in. An installed node-llhttp is taken as well.
# SB_LLHTTP_DIR (a folder holding llhttp.h, api.c, http.c and llhttp.c) overrides both.
set(SB_LLHTTP_DIR "" CACHE PATH "Folder with llhttp's C sources (llhttp.h, api.c, http.c, llhttp.c)")

find_path(SB_LLHTTP_INCLUDE_DIR llhttp.h
  HINTS ${SB_LLHTTP_DIR}
  PATHS /usr/local/share/scalebus/llhttp /usr/share/include/llhttp
  NO_DEFAULT_PATH)
find_path(SB_LLHTTP_SOURCE_DIR llhttp.c
  HINTS ${SB_LLHTTP_DIR}
  PATHS /usr/local/share/scalebus/llhttp /usr/share/llhttp
  NO_DEFAULT_PATH)
if(NOT SB_LLHTTP_INCLUDE_DIR OR NOT SB_LLHTTP_SOURCE_DIR
   OR NOT EXISTS ${SB_LLHTTP_SOURCE_DIR}/api.c OR NOT EXISTS ${SB_LLHTTP_SOURCE_DIR}/http.c)
  message(FATAL_ERROR "llhttp's C sources (llhttp.h, api.c, http.c, llhttp.c) not found in "
    "/usr/local/share/scalebus/llhttp or /usr/share/llhttp: run scripts/install-deps.sh "
    "(or pass -DSB_LLHTTP_DIR=FOLDER)")
endif()

add_library(sb_llhttp STATIC
  ${SB_LLHTTP_SOURCE_DIR}/api.c
  ${SB_LLHTTP_SOURCE_DIR}/http.c
  ${SB_LLHTTP_SOURCE_DIR}/llhttp.c)
target_include_directories(sb_llhttp SYSTEM PUBLIC ${SB_LLHTTP_INCLUDE_DIR})
set_target_properties(sb_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON
  C_VISIBILITY_PRESET hidden C_STANDARD 99 C_EXTENSIONS ON)
# Third-party generated code: its warnings are not ours to fix (and must not fail SB_WERROR).
target_compile_options(sb_llhttp PRIVATE -w)
message(STATUS "llhttp: ${SB_LLHTTP_SOURCE_DIR}")
