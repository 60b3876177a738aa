# Warning flags for every scalebus target: -Wall -Wextra and friends; -Werror under SB_WERROR (CI).
set(SB_WARNING_FLAGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wno-unused-parameter -Wvla)
if(SB_WERROR)
  list(APPEND SB_WARNING_FLAGS -Werror)
endif()
function(sb_target_warnings target)
  target_compile_options(${target} PRIVATE ${SB_WARNING_FLAGS})
endfunction()
