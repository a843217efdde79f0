"""checks.py — checks across the service: names the generated C declares, members, routes, objects
in the order C needs."""
import re

from .lexer import GenError
from .model import C_KEYWORDS, PARAM_SOURCES, ident_ok


# The names the generated code declares inside its functions (parameters and locals), which a
# type or a function of the service's would be hidden by; and the names the one header the
# generated files include (immersive.h: stdbool, stddef, stdint) defines besides *_t and im_*.
GEN_LOCALS = set("""a ap args at b call cap dst err fmt i k len n o on out r rb rc s seen sub v
vargs vout w x""".split()) | {f"i{d}" for d in range(16)}


# Functions gcc and clang know as builtins (C99 and GNU libc): a function of the service with
# one of these names is refused by the compilers whatever it includes (read off gcc 12 and
# clang 14 declaring each with another type), and main.
LIBC_BUILTINS = set("""abort abs acos acosf acosh acoshf acoshl acosl aligned_alloc alloca asin asinf asinh asinhf
asinhl asinl atan atan2 atan2f atan2l atanf atanh atanhf atanhl atanl bcmp bzero cabs cabsf
cabsl cacos cacosf cacosh cacoshf cacoshl cacosl calloc carg cargf cargl casin casinf casinh
casinhf casinhl casinl catan catanf catanh catanhf catanhl catanl cbrt cbrtf cbrtl ccos ccosf
ccosh ccoshf ccoshl ccosl ceil ceilf ceill cexp cexpf cexpl cimag cimagf cimagl clog clogf
clogl conj conjf conjl copysign copysignf copysignl cos cosf cosh coshf coshl cosl cpow cpowf
cpowl cproj cprojf cprojl creal crealf creall csin csinf csinh csinhf csinhl csinl csqrt csqrtf
csqrtl ctan ctanf ctanh ctanhf ctanhl ctanl dcgettext dgettext drem dremf dreml erf erfc erfcf
erfcl erff erfl exit exp exp10 exp10f exp10l exp2 exp2f exp2l expf expl expm1 expm1f expm1l
fabs fabsf fabsl fdim fdimf fdiml feclearexcept fegetround fesetround ffs ffsl ffsll floor
floorf floorl fma fmaf fmal fmax fmaxf fmaxl fmin fminf fminl fmod fmodf fmodl fprintf
fprintf_unlocked fputc fputc_unlocked fputs fputs_unlocked free frexp frexpf frexpl fscanf
fwrite fwrite_unlocked gamma gamma_r gammaf gammaf_r gammal gammal_r gettext hypot hypotf
hypotl ilogb ilogbf ilogbl imaxabs index isalnum isalpha isascii isblank iscntrl isdigit
isgraph islower isprint ispunct isspace isupper iswalnum iswalpha iswblank iswcntrl iswdigit
iswgraph iswlower iswprint iswpunct iswspace iswupper iswxdigit isxdigit j0 j0f j0l j1 j1f j1l
jn jnf jnl labs ldexp ldexpf ldexpl lgamma lgamma_r lgammaf lgammaf_r lgammal lgammal_r llabs
llrint llrintf llrintl llround llroundf llroundl log log10 log10f log10l log1p log1pf log1pl
log2 log2f log2l logb logbf logbl logf logl lrint lrintf lrintl lround lroundf lroundl main
malloc memccpy memchr memcmp memcpy memmove mempcpy memset modf modff modfl nan nanf nanl
nearbyint nearbyintf nearbyintl nextafter nextafterf nextafterl nexttoward nexttowardf
nexttowardl posix_memalign pow pow10 pow10f pow10l powf powl printf printf_unlocked putchar
puts realloc remainder remainderf remainderl remquo remquof remquol rindex rint rintf rintl
round roundf roundl scalb scalbf scalbl scalbln scalblnf scalblnl scalbn scalbnf scalbnl scanf
signbitd32 signbitf signbitl significand significandf significandl sin sincos sincosf sincosl
sinf sinh sinhf sinhl sinl snprintf sprintf sqrt sqrtf sqrtl sscanf stpcpy stpncpy strcasecmp
strcat strchr strcmp strcpy strcspn strdup strerror strfmon strftime strlen strncasecmp strncat
strncmp strncpy strndup strnlen strpbrk strrchr strspn strstr strtod strtol strtoul tan tanf
tanh tanhf tanhl tanl tgamma tgammaf tgammal toascii tolower toupper towlower towupper trunc
truncf truncl vfprintf vfscanf vprintf vscanf vsnprintf vsprintf vsscanf y0 y0f y0l y1 y1f y1l
yn ynf ynl""".split())


BUILTIN_SCHEMAS = {"HTTPError", "ValidationError", "HTTPValidationError", "NDArray", "TaskAccepted"}


STD_NAMES = {"NULL", "offsetof", "bool", "true", "false", "__bool_true_false_are_defined"}


STD_MACRO = re.compile(r"U?INT(8|16|32|64|PTR|MAX|_LEAST\d+|_FAST\d+)_(MIN|MAX|C)|U?INTMAX_C|"
                       r"SIZE_MAX|PTRDIFF_(MIN|MAX)|SIG_ATOMIC_(MIN|MAX)|WCHAR_(MIN|MAX)|WINT_(MIN|MAX)")


def check_names(modules):
    """Every C name the generated files declare at file scope, once in the whole service (the
    routes of all modules are one file); a type or function no generated local hides; none
    that C or the included header has."""
    seen = {}

    def claim(name, where, what):
        if name in C_KEYWORDS or name in STD_NAMES or STD_MACRO.fullmatch(name):
            raise GenError(where, f"{what} '{name}' is a name C or <stdint.h>/<stddef.h> has",
                           "choose another name")
        if name in seen:
            o_where, o_what = seen[name]
            raise GenError(where, f"{what} '{name}' is also the C name of {o_what} "
                                  f"(at {o_where[0]}:{o_where[1]})",
                           "rename one of them: the generated C declares both at file scope")
        seen[name] = (where, what)

    def local_clash(name, where, what, names=GEN_LOCALS):
        if name in names:
            raise GenError(where, f"{what} '{name}' is a name the generated code uses inside its "
                                  "functions", "choose a longer name: " + ", ".join(sorted(
                                      x for x in names if not x[1:].isdigit())) + " are taken")

    def enums(f, prefix, where):
        if f.type.base == "enum" and f.type.enum is None:
            for v in f.values:
                claim(f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', v)}", where,
                      f"the enum constant of value '{v}' of '{f.name}'")

    for m in modules:
        for d in m.enums.values():
            if d.name in BUILTIN_SCHEMAS:
                raise GenError(d.where, f"enum '{d.name}' is named like a schema the document has "
                                        "already", f"rename it: {', '.join(sorted(BUILTIN_SCHEMAS))} "
                                        "are the generator's")
            local_clash(d.name, d.where, "enum")
            claim(d.name, d.where, f"enum '{d.name}'")
            for v in d.values:
                claim(f"{d.name}_{re.sub(r'[^A-Za-z0-9_]', '_', v)}", d.where,
                      f"the constant of value '{v}' of enum '{d.name}'")
        for o in m.objects.values():
            if o.name in BUILTIN_SCHEMAS:
                raise GenError(o.where, f"object '{o.name}' is named like a schema the document has "
                                        "already", f"rename it: {', '.join(sorted(BUILTIN_SCHEMAS))} "
                                        "are the generator's")
            local_clash(o.name, o.where, "object")
            claim(o.name, o.where, f"object '{o.name}'")
            claim(o.name + "_list", o.where, f"the list type of object '{o.name}'")
            claim(o.name + "_map", o.where, f"the map type of object '{o.name}'")
            for f in o.fields:
                enums(f, f"{o.name}_{f.name}", f.where)
        for k in ("init", "fini"):
            fn_name = getattr(m, k)
            if fn_name:
                claim(fn_name, m.where, f"the .{k} function of module '{m.name}'")
        for e in m.endpoints:
            local_clash(e.func, e.func_where, "function", {"call", "args", "out"})  # im_gen_call_'s
            if e.func in LIBC_BUILTINS:
                raise GenError(e.func_where, f"function '{e.func}' has the name of a C library function "
                                             "the compilers know", f"call it {m.name}_{e.func}, or set "
                                             f".name = \"{e.func}\" to keep that name in the API")
            claim(e.func, e.func_where, f"function '{e.func}'")
            claim(e.func + "_args", e.func_where, f"the argument struct of '{e.func}'")
            claim(e.func + "_result", e.func_where, f"the result struct of '{e.func}'")
            for a in e.args:
                enums(a, f"{e.func}_{a.name}", a.where)
            for f in e.result_fields:
                enums(f, f"{e.func}_result_{f.name}", f.where)


def check_members(fields, what):
    """Members of one struct (an object's, a result's, or the body arguments'): names, the keys
    on the wire, and the x_is_null a nullable x adds, each once."""
    names, keys = {}, {}
    for f in fields:
        if f.name in names:
            raise GenError(f.where, f"{what} '{f.name}' is declared twice", "each field has its own name")
        names[f.name] = f
        if f.key in keys:
            raise GenError(f.where, f"{what}s '{keys[f.key].name}' and '{f.name}' are both '{f.key}' on the wire",
                           "give one another .alias")
        keys[f.key] = f
    for f in fields:
        if f.nullable and f.name + "_is_null" in names:
            raise GenError(names[f.name + "_is_null"].where,
                           f"'{f.name}_is_null' is the member nullable '{f.name}' adds", "rename it")


def check_service(modules):
    routes, funcs, public = {}, {}, {}
    for m in modules:
        for e in m.endpoints:
            key = (e.method, re.sub(r"\{[^}]*\}", "{}", e.path))
            if key in routes:
                o = routes[key]
                raise GenError(e.where, f"duplicate route {e.method} {e.path} (also at {o.where[0]}:{o.where[1]})",
                               "each method and path pair belongs to one endpoint")
            routes[key] = e
            if key == ("GET", "/openapi.json"):
                raise GenError(e.where, "GET /openapi.json is served by immersive itself",
                               "choose another path")
            if e.status == 204 and e.result is not None:
                raise GenError(e.where, f"{e.method} {e.path} answers 204 (No Content) but has an IM_RESULT",
                               "drop the IM_RESULT, or answer another status")
            check_members(e.result_fields, "result field")
            if e.func in funcs:
                o = funcs[e.func]
                raise GenError(e.func_where, f"function '{e.func}' serves two endpoints (also at {o.where[0]}:{o.where[1]})",
                               "each endpoint has a function of its own")
            funcs[e.func] = e
            if e.name is None:
                e.name = e.func
            if e.name in public:
                o = public[e.name]
                raise GenError(e.where, f"two functions are named '{e.name}' (also at {o.where[0]}:{o.where[1]})",
                               "a function's .name (by default its C name) is unique in the service")
            public[e.name] = e
            names, keys = {}, {}
            for a in e.args:
                if a.name in names:
                    raise GenError(a.where, f"argument '{a.name}' is declared twice",
                                   "each argument of an endpoint has its own name")
                names[a.name] = a
                k = (a.source if a.source in PARAM_SOURCES else "body",
                     a.key.lower() if a.source == "header" else a.key)
                if k in keys:
                    raise GenError(a.where, f"arguments '{keys[k].name}' and '{a.name}' are both "
                                   f"'{a.key}' in the {k[0]}", "give one another .alias")
                keys[k] = a
            for a in e.args:
                if a.nullable and a.name + "_is_null" in names:
                    b = names[a.name + "_is_null"]
                    raise GenError(b.where, f"'{b.name}' is the member nullable '{a.name}' adds", "rename it")
            for p in e.params:
                if ("path", p) not in keys:
                    raise GenError(e.where, f"path parameter {{{p}}} has no IM_ARG",
                                   f"declare it: IM_ARG(int64, {p}, \"...\") (or string)" if ident_ok(p) else
                                   f"declare it: IM_ARG(int64, {p.replace('-', '_').replace('.', '_')}, \"...\", .alias = \"{p}\")")
            whole = [a for a in e.args if a.whole]
            if whole and len(e.body_args) > 1:
                other = next(a for a in e.body_args if not a.whole)
                raise GenError(other.where, f"'{other.name}' is a key of the body, but IM_BODY makes the "
                               "body one value", "put it in the IM_BODY's object, or take it from the "
                               "query (.in = query)")
            raws = [a for a in e.args if a.source == "raw"]
            if raws and (len(raws) > 1 or e.body_args):
                raise GenError(raws[0].where, "a raw body argument must be the only body argument",
                               "move the others to the query: .in = query")
            if len(e.body_args) > 64:
                raise GenError(e.where, "more than 64 body arguments",
                               "group them in objects (IM_OBJECT)")
            for name in (e.func + "_args", e.func + "_result"):
                if name in funcs or any(name in mm.objects for mm in modules):
                    raise GenError(e.func_where, f"'{name}' is already a name in this service",
                                   "rename the function or the object")
        for o in m.objects.values():
            if len(o.fields) > 64:
                raise GenError(o.where, f"object '{o.name}' has more than 64 fields",
                               "split it into objects that hold objects")
            check_members(o.fields, "field")
            for f in o.fields:
                if f.source != "body":
                    raise GenError(f.where, "object fields come from the body", "drop .in")


def objects_in_order(modules):
    """Every object of the service, each after those it holds by value (C wants a member's
    struct complete); a cycle of objects holding each other by value is refused."""
    done, order, busy = set(), [], []
    def visit(o):
        if o.name in done:
            return
        if o in busy:
            cycle = busy[busy.index(o):] + [o]
            raise GenError(o.where, "objects hold each other by value: " + " -> ".join(x.name for x in cycle),
                           "make one of the fields an array (T[]): arrays hold their items by pointer")
        busy.append(o)
        for f in o.fields:
            if f.type.base == "object" and not f.type.many:
                visit(f.type.obj)
        busy.pop()
        done.add(o.name)
        order.append(o)
    for m in modules:
        for o in m.objects.values():
            visit(o)
    return order
