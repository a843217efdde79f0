"""openapi.py — the OpenAPI 3.1 document: JSON Schemas of the model's types and constraints,
operations, responses."""
import json

from .model import DTYPES, FLT_MAX, PARAM_SOURCES, TypeRef, npy_arg, result_is_ndarray, result_kind


NUM_SCHEMA = {"int32": {"type": "integer", "format": "int32"}, "int64": {"type": "integer", "format": "int64"},
              "uint32": {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1},
              "uint64": {"type": "integer", "format": "uint64", "minimum": 0, "maximum": 2**64 - 1},
              "double": {"type": "number", "format": "double"},
              "float": {"type": "number", "format": "float", "minimum": -FLT_MAX, "maximum": FLT_MAX}}


def schema_of(t, f=None, modules=None):
    """The JSON Schema of a value of type t, with f's constraints (from the model: the binder
    reads the same ones)."""
    if t.many:  # an array (items), or a map (an object of any keys: its values)
        inner = schema_of(TypeRef(t.base, obj=t.obj, enum=t.enum), f)
        s = {"type": "object", "additionalProperties": inner} if t.map else {"type": "array", "items": inner}
        if f is not None:
            if f.min_items is not None:
                s["minProperties" if t.map else "minItems"] = f.min_items
            if f.max_items is not None:
                s["maxProperties" if t.map else "maxItems"] = f.max_items
        return s
    b = t.base
    if b == "object":
        return {"$ref": f"#/components/schemas/{t.obj.name}"}
    if t.enum is not None:
        return {"$ref": f"#/components/schemas/{t.enum.name}"}
    if b == "ndarray":
        return nd_schema(f)
    s = dict(NUM_SCHEMA.get(b) or {"bool": {"type": "boolean"}, "string": {"type": "string"},
                                    "enum": {"type": "string"}, "json": {}}[b])
    if f is not None:
        if b == "enum":
            s["enum"] = list(f.values)
        if f.lo:  # the declared bound replaces the type's own
            s.pop("minimum", None)
            s["exclusiveMinimum" if f.lo[1] else "minimum"] = f.lo[0]
        if f.hi:
            s.pop("maximum", None)
            s["exclusiveMaximum" if f.hi[1] else "maximum"] = f.hi[0]
        if f.multiple_of is not None:
            s["multipleOf"] = f.multiple_of
        if f.format:
            s["format"] = f.format
        if f.pattern:
            s["pattern"] = f.pattern[0]
        if f.min_len is not None:
            s["minLength"] = f.min_len
        if f.max_len is not None:
            s["maxLength"] = f.max_len
    return s


NPY_SCHEMA = {"type": "string", "contentMediaType": "application/x-npy",
              "description": "numpy's .npy format, as np.save writes it (versions 1.0 to 3.0, "
                             "little-endian, C order)"}


ND_COMPONENT = {"title": "NDArray", "description": "An n-dimensional array as JSON: a number (0 "
                "dimensions), or a list of NDArrays of one shape (rectangular)",
                "anyOf": [{"type": "number"}, {"type": "array", "items": {"$ref": "#/components/schemas/NDArray"}}]}


def nd_schema(f):
    """Nested arrays as deep as .ndim says (sizes from .shape), else the recursive NDArray;
    x-immersive-ndarray tells the dtypes, ndim and shape a client may send."""
    dt = f.dtypes if f is not None else []  # a result's array: any
    ndim = f.ndim if f is not None else None
    shape = f.shape if f is not None else None
    ints = dt and all(d in ("i64", "i32", "u8") for d in dt)
    if ndim is None:
        s = {"allOf": [{"$ref": "#/components/schemas/NDArray"}]}
    else:
        s = {"type": "integer"} if ints else {"type": "number"}
        for d in reversed(range(ndim)):
            s = {"type": "array", "items": s}
            if shape and shape[d] >= 0:
                s["minItems"] = s["maxItems"] = shape[d]
    s["x-immersive-ndarray"] = {"dtype": dt or list(DTYPES), "ndim": ndim, "shape": shape}
    for v, name, items in ((f and f.min_items, "minElements", "minItems"),
                           (f and f.max_items, "maxElements", "maxItems")):
        if v is not None:
            s["x-immersive-ndarray"][name] = v
            if ndim == 1:  # then the elements are the items
                s[items] = v
    return s


def nullable_schema(s):
    """s that also takes null: type [T, "null"] (and null among an enum's values)."""
    if not s:  # json: any value, null already
        return s
    if "type" in s and "$ref" not in s and "allOf" not in s:
        s = dict(s, type=[s["type"], "null"])
        if "enum" in s:
            s["enum"] = s["enum"] + [None]
        return s
    return {"anyOf": [s, {"type": "null"}]}


def field_schema(f):
    s = schema_of(f.type, f)
    if f.nullable:
        s = nullable_schema(s)
    if "$ref" in s:
        s = {"allOf": [s]}  # siblings of $ref are fine in 3.1, allOf reads well in older tools
    if f.doc:
        s["description"] = f.doc
    if f.default is not None:
        s["default"] = f.default
    if f.example is not None:
        s["examples"] = [f.example]
    return s


def object_schema(title, fields, doc, extra):
    props, req = {}, []
    for f in fields:
        props[f.key] = field_schema(f)
        if f.required:
            req.append(f.key)
    s = {"title": title, "type": "object", "properties": props}
    if doc:
        s["description"] = doc
    if req:
        s["required"] = req
    if extra == "forbid":
        s["additionalProperties"] = False
    return s


def resolved_schema(s, modules, within=()):
    """s with every $ref to an object replaced by that object's schema; an object inside
    itself (a tree) keeps its $ref, which names the schema in /openapi.json."""
    if isinstance(s, dict):
        ref = s.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            for m in modules:
                if name in m.objects and name not in within:
                    o = m.objects[name]
                    rest = {k: v for k, v in s.items() if k != "$ref"}
                    return dict(resolved_schema(object_schema(o.name, o.fields, o.doc, o.extra),
                                                modules, within + (name,)), **rest)
        return {k: resolved_schema(v, modules, within) for k, v in s.items()}
    if isinstance(s, list):
        return [resolved_schema(v, modules, within) for v in s]
    return s


def args_definition(e, modules):
    """The function's arguments as GET /functions/{name} lists them (restful-functions'
    definitions): name, type as annotated, where it comes from, required, default, description
    and the JSON Schema of /openapi.json with objects written out."""
    out = []
    for a in e.args:
        t = "f64array" if getattr(a.type, "f64", False) else str(a.type)
        schema = field_schema(a)
        schema.pop("description", None)
        out.append({"name": a.key, "type": t, "in": a.source, "required": a.required,
                    "default": a.default, "description": a.doc or None,
                    "schema": resolved_schema(schema, modules)})
    return out


def openapi(service, title, version, modules):
    schemas = {}
    paths = {}
    for m in modules:
        for d in m.enums.values():
            schemas[d.name] = {"title": d.name, "type": "string", "enum": list(d.values), "description": d.doc}
        for o in m.objects.values():
            schemas[o.name] = object_schema(o.name, o.fields, o.doc, o.extra)
    for m in modules:
        for e in m.endpoints:
            op = {"operationId": e.func, "tags": e.tags}
            if e.summary:
                op["summary"] = e.summary
            if e.description:
                op["description"] = e.description
            if e.deprecated:
                op["deprecated"] = True
            params = []
            for a in e.args:
                if a.source in PARAM_SOURCES:
                    p = {"name": a.key, "in": a.source, "required": a.source == "path" or a.required,
                         "schema": schema_of(a.type, a)}
                    if a.default is not None:
                        p["schema"]["default"] = a.default
                    if a.example is not None:
                        p["example"] = a.example
                    if a.doc:
                        p["description"] = a.doc
                    if a.type.array:
                        p["style"], p["explode"] = "form", True
                    params.append(p)
            if params:
                op["parameters"] = params
            body = e.body_args
            raw = [a for a in e.args if a.source == "raw"]
            if body and body[0].whole:  # the body is that value itself
                bs = field_schema(body[0])
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": bs}}}
                if body[0].doc:
                    op["requestBody"]["description"] = body[0].doc
            elif body:
                sname = f"{e.func}_args"
                schemas[sname] = object_schema(sname, body, "", e.extra)
                op["requestBody"] = {"required": any(f.required for f in body),
                                     "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{sname}"}}}}
                if npy_arg(e):  # or the array alone, as .npy
                    op["requestBody"]["content"]["application/x-npy"] = {"schema": dict(
                        NPY_SCHEMA, description=f"the array '{npy_arg(e).name}' alone, in " + NPY_SCHEMA["description"])}
                    op["requestBody"]["content"]["application/octet-stream"] = {"schema": {
                        "type": "string", "contentMediaType": "application/octet-stream",
                        "description": f"the array '{npy_arg(e).name}' alone as little-endian float64 values, "
                                       "8 bytes each (1 dimension)"}}
            elif raw:
                # the values' own bounds (items, and each value's), which a string schema cannot say
                values = schema_of(raw[0].type, raw[0])
                op["requestBody"] = {"required": raw[0].required, "description": raw[0].doc or "float64 values",
                                     "x-immersive-values": values,
                                     "content": {"application/octet-stream": {"schema": {
                                         "type": "string", "contentMediaType": "application/octet-stream",
                                         "description": "little-endian IEEE 754 float64 values, 8 bytes each"}},
                                                 "application/x-npy": {"schema": dict(
                                                     NPY_SCHEMA, description="a 1-dimensional float64 array in " + NPY_SCHEMA["description"])}}}
            if e.result is None:
                rs = {"type": "null"}
            elif result_kind(e) == "fields":
                rname = f"{e.func}_result"
                schemas[rname] = object_schema(rname, e.result_fields, e.result_doc, "ignore")
                rs = {"$ref": f"#/components/schemas/{rname}"}
            elif result_kind(e) in ("object", "array"):  # the value itself
                rs = schema_of(e.result)
                if e.result_doc:
                    rs = {"allOf": [rs], "description": e.result_doc} if "$ref" in rs else dict(rs, description=e.result_doc)
            else:
                inner = schema_of(e.result)
                if e.result_doc:
                    inner = dict(inner, description=e.result_doc) if "$ref" not in inner else {"allOf": [inner], "description": e.result_doc}
                rname = f"{e.func}_result"
                schemas[rname] = {"title": rname, "type": "object", "properties": {"result": inner}, "required": ["result"]}
                rs = {"$ref": f"#/components/schemas/{rname}"}
            err = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}
            verr = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}
            executor = e.mode in ("pool", "serial", "process")
            ok = str(e.status)
            responses = {ok: {"description": {200: "Successful Response", 201: "Created"}.get(e.status, "Success"),
                              "content": {"application/json": {"schema": rs}}}}
            if e.status == 204:
                responses = {ok: {"description": "No Content"}}
            if result_is_ndarray(e):  # with Accept: application/x-npy
                responses[ok]["content"]["application/x-npy"] = {"schema": dict(
                    NPY_SCHEMA, description="the array alone, with Accept: application/x-npy; " + NPY_SCHEMA["description"])}
            if executor:  # every call on an executor is a task: asked for, it answers at once
                responses["202"] = {
                    "description": "Accepted as a task (the default here: .response = IM_ASYNC)" if e.response == "async"
                                   else "Accepted as a task, with Prefer: respond-async",
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "/tasks/{id}"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskAccepted"}}}}
            if e.args:
                responses["422"] = {"description": "Validation Error" + (
                    " (malformed JSON too: json_invalid, with its byte offset in loc and ctx)" if body or raw else ""),
                                    "content": verr}
            if body or raw:
                responses["413"] = {"description": "The body is over the server's max_body_bytes (or the "
                                                   "endpoint's), or binding it would take more memory than a "
                                                   "request may use", "content": err}
                responses["415"] = {"description": "The body is not of a media type this endpoint takes", "content": err}
            if executor:
                responses["429"] = {"description": "Too many calls in flight, or the work queue is full",
                                    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                                "description": "Seconds to wait before trying again"}},
                                    "content": err}
                responses["503"] = {"description": "The function's executor is not running, the server is "
                                                   "shutting down, or memory ran out", "content": err}
                responses["504"] = {"description": "The call ran past its time limit (.timeout_ms, or "
                                                   "functions.<name>.timeout_ms in the config)", "content": err}
            for code, what in sorted(e.errors.items()):  # the handler's own, as it documents them
                if str(code) in responses:
                    responses[str(code)]["description"] += "; or " + what
                else:
                    responses[str(code)] = {"description": what, "content": err}
            responses["default"] = {"description": "A failure of the handler's own (im_call_fail: its status "
                                                   "and detail), or an answer that broke its schema (500)",
                                    "content": err}
            op["responses"] = responses
            op["x-immersive"] = {"name": e.name or e.func, "module": m.name, "mode": e.mode, "priority": e.priority,
                                 "status": e.status,
                                 "max_concurrency": e.max_concurrency, "timeout_ms": e.timeout_ms,
                                 "response": e.response, "extra": e.extra}
            if e.max_body_bytes:
                op["x-immersive"]["max_body_bytes"] = e.max_body_bytes
            paths.setdefault(e.path, {})[e.method.lower()] = op
    schemas["HTTPError"] = {"title": "HTTPError", "type": "object",
                            "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    if any(e.mode in ("pool", "serial", "process") for m in modules for e in m.endpoints):
        schemas["TaskAccepted"] = {
            "title": "TaskAccepted", "type": "object", "description": "A call taken as a task: GET /tasks/{task_id}",
            "properties": {"task_id": {"type": "string", "description": "32 hex digits"},
                           "state": {"type": "string", "enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
                                                                "TIMEOUT", "CANCELLED"]},
                           "function": {"type": "string"}},
            "required": ["task_id", "state", "function"]}
    schemas["ValidationError"] = {
        "title": "ValidationError", "type": "object",
        "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                       "msg": {"type": "string"}, "type": {"type": "string"}, "input": {},
                       "ctx": {"type": "object"}},
        "required": ["loc", "msg", "type"]}
    schemas["HTTPValidationError"] = {
        "title": "HTTPValidationError", "type": "object",
        "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}}}
    if '"#/components/schemas/NDArray"' in json.dumps([paths, schemas]):
        schemas["NDArray"] = ND_COMPONENT
    tags = [{"name": m.name, "description": m.doc} for m in modules]
    return {"openapi": "3.1.0", "info": {"title": title, "version": version},
            "tags": tags, "paths": paths, "components": {"schemas": schemas}}
