#!/usr/bin/env python3
"""immersive_gen.py — reads the annotations in module sources and emits, for one service:

  <module>.gen.h        per module: argument and result structs, enum constants, prototypes
  <service>.types.h     the service's types (IM_ENUM, IM_OBJECT), which any module may use
  <service>.routes.c    binders (request -> argument struct), result writers, the endpoint
                        table, the embedded OpenAPI 3.1 document, im_register_<service>()
  <service>.service.h   the prototype of im_register_<service>()
  <service>.openapi.json

usage: immersive_gen.py --service NAME --out DIR [--title T] [--version V] MODULE_DIR...

A module is a folder whose .c files hold the annotations (README shows a complete one):

  IM_MODULE(math, "Integer arithmetic")
  IM_OBJECT(point, "A point")                      then IM_FIELD(type, name, "doc", ...)
  IM_ENUM(color, "A color", "red", "green")        a C enum color: color_red, color_green
  IM_ENDPOINT(POST, "/v1/math/add", .summary = "Add two integers", .mode = IM_INLINE)
  IM_ARG(int64, x, "A value of X", .min = -1000, .max = 1000, .default = 0)
  IM_RESULT(int64, "The sum")                      or IM_RESULT(object, "...") + IM_FIELD lines
  int add(im_call *call, const add_args *in, add_result *out) { ... }

Everything it cannot honour is reported as `file:line:col: error: message` followed by a
`hint:` line, and nothing is written; what it accepts compiles. Standard library only; the
output depends on nothing but the input (same input, same bytes).

The work is in the package imgen beside this file (installed: share/immersive/imgen): lexer,
pattern, model, reader, checks, openapi, emit_c, docs, cli.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree or the install
HERE = os.path.dirname(os.path.realpath(__file__))
# the package: beside this file (the source tree), or where the install puts it
for d in (HERE, os.path.join(HERE, os.pardir, "share", "immersive")):
    if os.path.isdir(os.path.join(d, "imgen")):
        sys.path.insert(0, os.path.normpath(d))
        break

from imgen.cli import main  # noqa: E402 (after the path is known)

if __name__ == "__main__":
    sys.exit(main())
