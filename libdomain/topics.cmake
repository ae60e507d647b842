# Generates domain/topics_conf.h (see include/domain/topics.h) from
# config/topics.conf at configure time; CMake re-runs when the file changes.
function(linli_generate_topics conf out)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${conf})
  file(STRINGS ${conf} lines)
  set(body "")
  set(count 0)
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*(#|$)")
      continue()
    endif()
    if(NOT line MATCHES "^(linli\\.[a-z0-9.-]+\\.v[0-9]+)[ \t]+([0-9]+)[ \t]+(-?[0-9]+)[ \t]+(delete|compact)[ \t]*$")
      message(FATAL_ERROR "${conf}: bad line: ${line}")
    endif()
    set(name ${CMAKE_MATCH_1})
    set(parts ${CMAKE_MATCH_2})
    string(REGEX REPLACE "^linli\\.(.*)\\.v[0-9]+$" "\\1" sym ${name})
    string(REGEX REPLACE "[.-]" "_" sym ${sym})
    string(TOUPPER ${sym} sym)
    string(APPEND body "#define LINLI_TOPIC_${sym} \"${name}\"\n")
    string(APPEND body "#define LINLI_TOPIC_${sym}_PARTITIONS ${parts}\n")
    math(EXPR count "${count} + 1")
  endforeach()
  file(CONFIGURE OUTPUT ${out} CONTENT
"/* Generated from config/topics.conf by libdomain/topics.cmake: edit that file. */
#ifndef DOMAIN_TOPICS_CONF_H
#define DOMAIN_TOPICS_CONF_H
${body}#define LINLI_TOPIC_COUNT ${count}
#endif
" @ONLY)
endfunction()
