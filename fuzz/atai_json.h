/*
** atai_json.h: the src/ files the JSON and error-envelope harnesses test,
** included the way src/core.c includes them (one translation unit, so their
** static functions are callable): the plain-C bottom layer only.
*/
#ifndef ATAI_FUZZ_JSON_H
#define ATAI_FUZZ_JSON_H

#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h> /* error.c's tables are keyed by CURLcode */

#include "../src/compat.h"

#include "../src/util.c"
#include "../src/buffer.c"
#include "../src/json.c"
#include "../src/error.c"

#endif
