// functions-nb glue for Zig 0.17 (the default) and 0.16 (`--toolchain zig-0.16`), appended after
// the cell. Every identifier starts with __fnb_ so user declarations never clash. Where the two
// std libraries differ the glue asks the type (`@hasField`); see functions_nb/languages/zig.py.

const __fnb_std = @import("std");

/// Host imports (module "fnb"). Wrapped in a struct so that the names
/// `error`/`panic`/`log` cannot clash with user declarations.
const __fnb_host = struct {
    extern "fnb" fn fail(__fnb_ptr: u32, __fnb_len: u32) void;
    extern "fnb" fn bad_arg(__fnb_ptr: u32, __fnb_len: u32) void;
    extern "fnb" fn panic(__fnb_ptr: u32, __fnb_len: u32) void;
    extern "fnb" fn log(__fnb_level: u32, __fnb_ptr: u32, __fnb_len: u32) void;
};

// ---- panic handler (root decl `panic` must be a namespace in 0.17) ----
pub const panic = __fnb_std.debug.FullPanic(__fnb_panicFn);

fn __fnb_panicFn(__fnb_msg: []const u8, __fnb_first_trace_addr: ?usize) noreturn {
    _ = __fnb_first_trace_addr;
    __fnb_host.panic(@intCast(@intFromPtr(__fnb_msg.ptr)), @intCast(__fnb_msg.len));
    @trap();
}

// ---- logging (no std.Io needed) ----
pub const std_options: __fnb_std.Options = .{
    .logFn = __fnb_logFn,
    .log_level = .debug, // default would be .info in Release modes (debug logs compiled out)
};

fn __fnb_logFn(
    comptime __fnb_level: __fnb_std.log.Level,
    comptime __fnb_scope: @EnumLiteral(),
    comptime __fnb_format: []const u8,
    __fnb_args: anytype,
) void {
    const __fnb_lvl: u32 = switch (__fnb_level) {
        .debug => 0,
        .info => 2,
        .warn => 3,
        .err => 4,
    };
    const __fnb_prefix = if (__fnb_scope == .default) "" else "(" ++ @tagName(__fnb_scope) ++ ") ";
    var __fnb_buf: [4096]u8 = undefined;
    var __fnb_w: __fnb_std.Io.Writer = .fixed(&__fnb_buf);
    __fnb_w.print(__fnb_prefix ++ __fnb_format, __fnb_args) catch {}; // on overflow: send truncated text
    const __fnb_out = __fnb_w.buffered();
    __fnb_host.log(__fnb_lvl, @intCast(@intFromPtr(__fnb_out.ptr)), @intCast(__fnb_out.len));
}

// ---- per-call arena ----
var __fnb_arena_state: __fnb_std.heap.ArenaAllocator = .init(__fnb_std.heap.wasm_allocator);
var __fnb_dirty: bool = false; // set after a call returns; next alloc/call resets the arena

fn __fnb_reset_if_dirty() void {
    if (__fnb_dirty) {
        _ = __fnb_arena_state.reset(.{ .retain_with_limit = 1 << 20 });
        __fnb_dirty = false;
    }
}

fn __fnb_alloc_impl(__fnb_len: u32) callconv(.c) u32 {
    __fnb_reset_if_dirty();
    // 8-byte aligned, so numeric arrays can be used in place
    const __fnb_mem = __fnb_arena_state.allocator().alignedAlloc(u8, .@"8", __fnb_len) catch return 0;
    return @intCast(@intFromPtr(__fnb_mem.ptr));
}

fn __fnb_reset_impl() callconv(.c) void {
    _ = __fnb_arena_state.reset(.{ .retain_with_limit = 1 << 20 });
    __fnb_dirty = false;
}

comptime {
    @export(&__fnb_alloc_impl, .{ .name = "__fnb_alloc" });
    @export(&__fnb_reset_impl, .{ .name = "__fnb_reset" });
}

// ---- type classification ----
const __fnb_Kind = enum { allocator, scalar, string, array, json };

fn __fnb_kind(comptime __fnb_T: type) __fnb_Kind {
    if (__fnb_T == __fnb_std.mem.Allocator) return .allocator;
    if (__fnb_T == []const u8 or __fnb_T == []u8) return .string;
    inline for (.{ f64, f32, i32, i64 }) |__fnb_E| {
        if (__fnb_T == []const __fnb_E or __fnb_T == []__fnb_E) return .array;
    }
    return switch (@typeInfo(__fnb_T)) {
        .bool, .float => .scalar,
        // wasm C ABI: ints <= 32 bits -> i32, <= 64 bits -> i64 (u8/i16/... are widened)
        .int => |__fnb_i| if (__fnb_i.bits <= 64) .scalar else .json,
        else => .json,
    };
}

/// The wasm-level type of a scalar: integers widened to 32 or 64 bits (the C calling
/// convention has no u1 or i24; the host checks the declared range).
fn __fnb_Wide(comptime __fnb_T: type) type {
    return switch (@typeInfo(__fnb_T)) {
        .int => |__fnb_i| if (__fnb_i.bits <= 32)
            (if (__fnb_i.signedness == .signed) i32 else u32)
        else if (__fnb_i.signedness == .signed) i64 else u64,
        else => __fnb_T,
    };
}

/// Wasm-level parameter types produced for one user parameter.
fn __fnb_wasmParamsOf(comptime __fnb_T: type) []const type {
    return switch (__fnb_kind(__fnb_T)) {
        .allocator => &.{},
        .scalar => &.{__fnb_Wide(__fnb_T)},
        .string, .json => &.{ u32, u32 }, // (ptr, len) in linear memory
        .array => &.{ u32, u32 }, // (ptr, element count), 8-byte aligned
    };
}

/// The parameter types of a function type (Zig 0.17: `param_types`; 0.16: `params[i].type`).
fn __fnb_paramTypes(comptime __fnb_F: type) []const ?type {
    const __fnb_info = @typeInfo(__fnb_F).@"fn";
    if (@hasField(@TypeOf(__fnb_info), "param_types")) return __fnb_info.param_types;
    var __fnb_list: []const ?type = &.{};
    for (__fnb_info.params) |__fnb_p| __fnb_list = __fnb_list ++ [_]?type{__fnb_p.type};
    return __fnb_list;
}

fn __fnb_wasmParams(comptime __fnb_F: type) []const type {
    var __fnb_list: []const type = &.{};
    for (__fnb_paramTypes(__fnb_F)) |__fnb_pt| {
        const __fnb_T = __fnb_pt orelse @compileError("fnb: anytype/generic params are not supported");
        __fnb_list = __fnb_list ++ __fnb_wasmParamsOf(__fnb_T);
    }
    return __fnb_list;
}

fn __fnb_Payload(comptime __fnb_F: type) type {
    const __fnb_R = @typeInfo(__fnb_F).@"fn".return_type orelse @compileError("fnb: generic return type");
    return switch (@typeInfo(__fnb_R)) {
        .error_union => |__fnb_eu| __fnb_eu.payload,
        else => __fnb_R,
    };
}

fn __fnb_WasmRet(comptime __fnb_F: type) type {
    const __fnb_P = __fnb_Payload(__fnb_F);
    if (__fnb_P == void or __fnb_P == noreturn) return void;
    return switch (__fnb_kind(__fnb_P)) {
        .scalar => __fnb_Wide(__fnb_P),
        .string, .json, .array => u64, // (ptr << 32) | byte length, 0 on error
        .allocator => @compileError("fnb: cannot return an Allocator"),
    };
}

// ---- JSON results ----
// Written by std.json.Stringify except where its text would not read back as the same value:
// - floats: std.json prints an integral f64 as `2` (and 1e300 as its 301 digits), which the host
//   reads as an int; every float is written in exponent form (`2e0`, `-0e0`, `1e300`: the
//   shortest text that reads back exactly, always a float), NaN and infinities bare (`nan`,
//   `inf`: the host reads them as floats);
// - hash maps (std.HashMap, AutoHashMap, StringHashMap, the array hash maps, managed or not),
//   which std.json cannot write: objects whose keys are the map's string keys, the decimal text
//   of integer keys, or enum tag names.
// Types holding neither (checked at compile time) go to std.json as they are.
const __fnb_JsonError = __fnb_std.json.Stringify.Error;

fn __fnb_isMap(comptime __fnb_T: type) bool {
    return @typeInfo(__fnb_T) == .@"struct" and @hasDecl(__fnb_T, "KV") and
        @hasDecl(__fnb_T, "Entry") and @hasDecl(__fnb_T, "iterator");
}

/// Whether a value of this type may hold a float or a hash map (then it is written here).
fn __fnb_needsWalk(comptime __fnb_T: type, comptime __fnb_depth: u32) bool {
    if (__fnb_depth > 8) return true; // deep or self-referential types: the walk handles any type
    if (__fnb_T == __fnb_std.json.Value or __fnb_isMap(__fnb_T)) return true;
    return switch (@typeInfo(__fnb_T)) {
        .float, .comptime_float => true,
        .optional => |__fnb_o| __fnb_needsWalk(__fnb_o.child, __fnb_depth + 1),
        .pointer => |__fnb_p| __fnb_needsWalk(__fnb_p.child, __fnb_depth + 1),
        .array => |__fnb_a| __fnb_needsWalk(__fnb_a.child, __fnb_depth + 1),
        .vector => |__fnb_v| __fnb_needsWalk(__fnb_v.child, __fnb_depth + 1),
        .@"struct", .@"union" => {
            if (__fnb_std.meta.hasFn(__fnb_T, "jsonStringify")) return false; // its own writer
            for (__fnb_std.meta.fieldNames(__fnb_T)) |__fnb_n| {
                if (__fnb_needsWalk(@FieldType(__fnb_T, __fnb_n), __fnb_depth + 1)) return true;
            }
            return false;
        },
        else => false,
    };
}

fn __fnb_writeFloat(__fnb_jw: *__fnb_std.json.Stringify, __fnb_v: anytype) __fnb_JsonError!void {
    const __fnb_f: f64 = @floatCast(__fnb_v);
    if (__fnb_std.math.isNan(__fnb_f)) return __fnb_jw.print("nan", .{});
    if (__fnb_std.math.isInf(__fnb_f)) return if (__fnb_f < 0) __fnb_jw.print("-inf", .{}) else __fnb_jw.print("inf", .{});
    if (__fnb_f != __fnb_v) return __fnb_jw.write(__fnb_v); // f80/f128 beyond f64: std.json's form
    return __fnb_jw.print("{e}", .{__fnb_f});
}

fn __fnb_writeJson(__fnb_jw: *__fnb_std.json.Stringify, __fnb_a: __fnb_std.mem.Allocator, __fnb_v: anytype) __fnb_JsonError!void {
    const __fnb_T = @TypeOf(__fnb_v);
    if (comptime !__fnb_needsWalk(__fnb_T, 0)) return __fnb_jw.write(__fnb_v);
    if (comptime __fnb_isMap(__fnb_T)) return __fnb_writeMap(__fnb_jw, __fnb_a, &__fnb_v);
    if (__fnb_T == __fnb_std.json.Value) {
        switch (__fnb_v) {
            .float => |__fnb_f| return __fnb_writeFloat(__fnb_jw, __fnb_f),
            .array => |__fnb_l| return __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_l.items),
            .object => |__fnb_o| return __fnb_writeMap(__fnb_jw, __fnb_a, &__fnb_o),
            else => return __fnb_jw.write(__fnb_v),
        }
    }
    switch (@typeInfo(__fnb_T)) {
        .float, .comptime_float => return __fnb_writeFloat(__fnb_jw, __fnb_v),
        .optional => return if (__fnb_v) |__fnb_x| __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_x) else __fnb_jw.write(null),
        .pointer => |__fnb_p| switch (__fnb_p.size) {
            .one => return __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_v.*),
            .slice => {
                try __fnb_jw.beginArray();
                for (__fnb_v) |__fnb_x| try __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_x);
                return __fnb_jw.endArray();
            },
            else => return __fnb_jw.write(__fnb_v),
        },
        .array => {
            try __fnb_jw.beginArray();
            for (__fnb_v) |__fnb_x| try __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_x);
            return __fnb_jw.endArray();
        },
        .vector => |__fnb_vi| {
            const __fnb_items: [__fnb_vi.len]__fnb_vi.child = __fnb_v;
            return __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_items);
        },
        .@"struct" => |__fnb_s| {
            if (__fnb_s.is_tuple) try __fnb_jw.beginArray() else try __fnb_jw.beginObject();
            inline for (comptime __fnb_std.meta.fieldNames(__fnb_T)) |__fnb_n| {
                if (@FieldType(__fnb_T, __fnb_n) != void) {
                    if (!__fnb_s.is_tuple) try __fnb_jw.objectField(__fnb_n);
                    try __fnb_writeJson(__fnb_jw, __fnb_a, @field(__fnb_v, __fnb_n));
                }
            }
            return if (__fnb_s.is_tuple) __fnb_jw.endArray() else __fnb_jw.endObject();
        },
        .@"union" => |__fnb_u| {
            if (__fnb_u.tag_type == null) return __fnb_jw.write(__fnb_v); // std.json refuses it
            try __fnb_jw.beginObject();
            switch (__fnb_v) {
                inline else => |__fnb_x, __fnb_tag| {
                    try __fnb_jw.objectField(@tagName(__fnb_tag));
                    if (@TypeOf(__fnb_x) == void) {
                        try __fnb_jw.beginObject();
                        try __fnb_jw.endObject();
                    } else try __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_x);
                },
            }
            return __fnb_jw.endObject();
        },
        else => return __fnb_jw.write(__fnb_v),
    }
}

fn __fnb_writeMap(__fnb_jw: *__fnb_std.json.Stringify, __fnb_a: __fnb_std.mem.Allocator, __fnb_map: anytype) __fnb_JsonError!void {
    try __fnb_jw.beginObject();
    var __fnb_it = __fnb_map.iterator();
    while (__fnb_it.next()) |__fnb_e| {
        const __fnb_k = __fnb_e.key_ptr.*;
        const __fnb_K = @TypeOf(__fnb_k);
        if (__fnb_K == []const u8 or __fnb_K == []u8) {
            try __fnb_jw.objectField(__fnb_k);
        } else switch (@typeInfo(__fnb_K)) {
            .int, .comptime_int => try __fnb_jw.objectField(__fnb_std.fmt.allocPrint(__fnb_a, "{d}", .{__fnb_k}) catch return error.WriteFailed),
            .@"enum" => try __fnb_jw.objectField(@tagName(__fnb_k)),
            else => @compileError("fnb: a hash map result needs string, integer or enum keys to become a JSON object"),
        }
        try __fnb_writeJson(__fnb_jw, __fnb_a, __fnb_e.value_ptr.*);
    }
    try __fnb_jw.endObject();
}

/// The result as std.json sees it: written by __fnb_writeJson.
fn __fnb_Result(comptime __fnb_T: type) type {
    return struct {
        value: *const __fnb_T,
        arena: __fnb_std.mem.Allocator,
        pub fn jsonStringify(__fnb_self: @This(), __fnb_jw: *__fnb_std.json.Stringify) __fnb_JsonError!void {
            try __fnb_writeJson(__fnb_jw, __fnb_self.arena, __fnb_self.value.*);
        }
    };
}

// ---- JSON arguments ----
// std.json parses them, except: hash maps (which it cannot parse) are built from the JSON
// object (keys: the string, an integer's decimal text, an enum tag name), and an enum takes
// only its tag name (std.json would also take a number or a numeric string: "0" -> the first
// tag, a silent change).
const __fnb_parse_options: __fnb_std.json.ParseOptions = .{
    .ignore_unknown_fields = true,
    .allocate = .alloc_always,
};

fn __fnb_ownParse(comptime __fnb_T: type) bool {
    if (__fnb_isMap(__fnb_T)) return true;
    return switch (@typeInfo(__fnb_T)) {
        .@"enum" => !@hasDecl(__fnb_T, "jsonParse"),
        .optional => |__fnb_o| __fnb_ownParse(__fnb_o.child),
        else => false,
    };
}

fn __fnb_parseArg(comptime __fnb_T: type, __fnb_a: __fnb_std.mem.Allocator, __fnb_bytes: []const u8) anyerror!__fnb_T {
    const __fnb_v = try __fnb_std.json.parseFromSliceLeaky(__fnb_std.json.Value, __fnb_a, __fnb_bytes, __fnb_parse_options);
    try __fnb_checkNumbers(__fnb_T, __fnb_a, __fnb_v);
    return __fnb_fromValue(__fnb_T, __fnb_a, __fnb_v);
}

/// Why the last argument was refused, when an error name alone would not say (error.NotExact).
var __fnb_detail: []const u8 = "";

fn __fnb_notExact(__fnb_a: __fnb_std.mem.Allocator, comptime __fnb_T: type, __fnb_text: []const u8, comptime __fnb_why: []const u8) anyerror {
    __fnb_detail = __fnb_std.fmt.allocPrint(__fnb_a, __fnb_why, .{ __fnb_text, @typeName(__fnb_T) }) catch "a number does not fit its type";
    return error.NotExact;
}

/// Numbers cross exactly or are refused, as scalar arguments do: a float (2.0) is no integer
/// (std.json would take it), and an integer must be one the float type holds exactly
/// (std.json would round 2**53 + 1).
fn __fnb_checkNumbers(comptime __fnb_T: type, __fnb_a: __fnb_std.mem.Allocator, __fnb_v: __fnb_std.json.Value) anyerror!void {
    if (__fnb_T == __fnb_std.json.Value) return;
    if (comptime __fnb_isMap(__fnb_T)) {
        if (__fnb_v == .object) {
            var __fnb_it = __fnb_v.object.iterator();
            while (__fnb_it.next()) |__fnb_e| try __fnb_checkNumbers(@FieldType(__fnb_T.KV, "value"), __fnb_a, __fnb_e.value_ptr.*);
        }
        return;
    }
    switch (@typeInfo(__fnb_T)) {
        .int => if (__fnb_v == .float) {
            return __fnb_notExact(__fnb_a, __fnb_T, __fnb_std.fmt.allocPrint(__fnb_a, "{e}", .{__fnb_v.float}) catch "a float", "the float {s} is no integer ({s} declared)");
        },
        .float => switch (__fnb_v) {
            .integer => |__fnb_i| {
                const __fnb_f: f64 = @floatFromInt(__fnb_i);
                if (__fnb_f >= 9.223372036854775807e18 or @as(i64, @intFromFloat(__fnb_f)) != __fnb_i)
                    return __fnb_notExact(__fnb_a, __fnb_T, __fnb_std.fmt.allocPrint(__fnb_a, "{d}", .{__fnb_i}) catch "an integer", "integer {s} has no exact {s} value");
            },
            .number_string => |__fnb_s| if (__fnb_std.mem.indexOfAny(u8, __fnb_s, ".eE") == null) {
                const __fnb_n = __fnb_std.fmt.parseInt(i128, __fnb_s, 10) catch return __fnb_notExact(__fnb_a, __fnb_T, __fnb_s, "integer {s} is beyond 128 bits: pass it as a float for {s}");
                const __fnb_f: f64 = @floatFromInt(__fnb_n);
                if (@abs(__fnb_f) >= 1.7e38 or @as(i128, @intFromFloat(__fnb_f)) != __fnb_n)
                    return __fnb_notExact(__fnb_a, __fnb_T, __fnb_s, "integer {s} has no exact {s} value");
            },
            else => {},
        },
        .@"enum" => if (comptime !@hasDecl(__fnb_T, "jsonParse")) {
            // only a tag name (std.json would also take 0 or "0" as the first tag)
            if (__fnb_v != .string) return __fnb_notExact(__fnb_a, __fnb_T, @tagName(__fnb_v), "a JSON {s} is no tag name of {s}");
            if (__fnb_std.meta.stringToEnum(__fnb_T, __fnb_v.string) == null) return __fnb_notExact(__fnb_a, __fnb_T, __fnb_v.string, "\"{s}\" is no tag of {s}");
        },
        .optional => |__fnb_o| if (__fnb_v != .null) try __fnb_checkNumbers(__fnb_o.child, __fnb_a, __fnb_v),
        .pointer => |__fnb_p| switch (__fnb_p.size) {
            .one => try __fnb_checkNumbers(__fnb_p.child, __fnb_a, __fnb_v),
            .slice => if (__fnb_p.child != u8 and __fnb_v == .array) {
                for (__fnb_v.array.items) |__fnb_x| try __fnb_checkNumbers(__fnb_p.child, __fnb_a, __fnb_x);
            },
            else => {},
        },
        .array => |__fnb_arr| if (__fnb_arr.child != u8 and __fnb_v == .array) {
            for (__fnb_v.array.items) |__fnb_x| try __fnb_checkNumbers(__fnb_arr.child, __fnb_a, __fnb_x);
        },
        .@"struct" => if (comptime !@hasDecl(__fnb_T, "jsonParse")) {
            if (__fnb_v == .object) {
                inline for (comptime __fnb_std.meta.fieldNames(__fnb_T)) |__fnb_n| {
                    if (__fnb_v.object.get(__fnb_n)) |__fnb_x| try __fnb_checkNumbers(@FieldType(__fnb_T, __fnb_n), __fnb_a, __fnb_x);
                }
            }
        },
        else => {},
    }
}

fn __fnb_fromValue(comptime __fnb_T: type, __fnb_a: __fnb_std.mem.Allocator, __fnb_v: __fnb_std.json.Value) anyerror!__fnb_T {
    if (comptime __fnb_isMap(__fnb_T)) {
        if (__fnb_v != .object) return error.UnexpectedToken;
        const __fnb_managed = comptime @hasField(__fnb_T, "allocator");
        var __fnb_map: __fnb_T = if (__fnb_managed) __fnb_T.init(__fnb_a) else .empty;
        const __fnb_K = @FieldType(__fnb_T.KV, "key");
        const __fnb_V = @FieldType(__fnb_T.KV, "value");
        var __fnb_it = __fnb_v.object.iterator();
        while (__fnb_it.next()) |__fnb_e| {
            const __fnb_text = __fnb_e.key_ptr.*;
            const __fnb_key: __fnb_K = if (__fnb_K == []const u8 or __fnb_K == []u8)
                __fnb_text
            else switch (@typeInfo(__fnb_K)) {
                .int => try __fnb_std.fmt.parseInt(__fnb_K, __fnb_text, 10),
                .@"enum" => __fnb_std.meta.stringToEnum(__fnb_K, __fnb_text) orelse return error.InvalidEnumTag,
                else => @compileError("fnb: a hash map argument needs string, integer or enum keys"),
            };
            const __fnb_value = try __fnb_fromValue(__fnb_V, __fnb_a, __fnb_e.value_ptr.*);
            if (__fnb_managed) try __fnb_map.put(__fnb_key, __fnb_value) else try __fnb_map.put(__fnb_a, __fnb_key, __fnb_value);
        }
        return __fnb_map;
    }
    switch (@typeInfo(__fnb_T)) {
        .@"enum" => if (comptime !@hasDecl(__fnb_T, "jsonParse")) {
            if (__fnb_v != .string) return error.InvalidEnumTag;
            return __fnb_std.meta.stringToEnum(__fnb_T, __fnb_v.string) orelse error.InvalidEnumTag;
        },
        .optional => |__fnb_o| if (comptime __fnb_ownParse(__fnb_o.child)) {
            if (__fnb_v == .null) return null;
            return try __fnb_fromValue(__fnb_o.child, __fnb_a, __fnb_v);
        },
        else => {},
    }
    return __fnb_std.json.parseFromValueLeaky(__fnb_T, __fnb_a, __fnb_v, __fnb_parse_options);
}

fn __fnb_packSlice(__fnb_s: []const u8) u64 {
    return (@as(u64, @intCast(@intFromPtr(__fnb_s.ptr))) << 32) | @as(u64, @intCast(__fnb_s.len));
}

fn __fnb_reportError(comptime __fnb_prefix: []const u8, __fnb_err: anyerror) void {
    if (comptime __fnb_prefix.len == 0) {
        const __fnb_name = @errorName(__fnb_err);
        __fnb_host.fail(@intCast(@intFromPtr(__fnb_name.ptr)), @intCast(__fnb_name.len));
    } else {
        var __fnb_buf: [256]u8 = undefined;
        const __fnb_s = __fnb_std.fmt.bufPrint(&__fnb_buf, __fnb_prefix ++ "{s}", .{@errorName(__fnb_err)}) catch __fnb_prefix;
        __fnb_host.bad_arg(@intCast(@intFromPtr(__fnb_s.ptr)), @intCast(__fnb_s.len));
    }
}

fn __fnb_zero(comptime __fnb_R: type) __fnb_R {
    return switch (@typeInfo(__fnb_R)) {
        .void => {},
        .bool => false,
        else => 0,
    };
}

/// Converts the wasm-level args tuple to user args, calls the user fn, encodes result.
fn __fnb_invoke(comptime __fnb_f: anytype, __fnb_wargs: anytype) __fnb_WasmRet(@TypeOf(__fnb_f)) {
    const __fnb_F = @TypeOf(__fnb_f);
    const __fnb_R = __fnb_WasmRet(__fnb_F);
    __fnb_reset_if_dirty();
    defer __fnb_dirty = true;
    const __fnb_arena = __fnb_arena_state.allocator();

    var __fnb_args: __fnb_std.meta.ArgsTuple(__fnb_F) = undefined;
    comptime var __fnb_wi: usize = 0;
    inline for (comptime __fnb_paramTypes(__fnb_F), 0..) |__fnb_pt, __fnb_i| {
        const __fnb_T = __fnb_pt.?;
        switch (comptime __fnb_kind(__fnb_T)) {
            .allocator => __fnb_args[__fnb_i] = __fnb_arena,
            .scalar => {
                __fnb_args[__fnb_i] = if (@typeInfo(__fnb_T) == .int) @intCast(__fnb_wargs[__fnb_wi]) else __fnb_wargs[__fnb_wi];
                __fnb_wi += 1;
            },
            .array => {
                const __fnb_E = @typeInfo(__fnb_T).pointer.child;
                const __fnb_ptr: [*]__fnb_E = @ptrFromInt(__fnb_wargs[__fnb_wi]);
                __fnb_args[__fnb_i] = __fnb_ptr[0..__fnb_wargs[__fnb_wi + 1]];
                __fnb_wi += 2;
            },
            .string, .json => {
                const __fnb_ptr: [*]u8 = @ptrFromInt(__fnb_wargs[__fnb_wi]);
                const __fnb_bytes = __fnb_ptr[0..__fnb_wargs[__fnb_wi + 1]];
                __fnb_wi += 2;
                if (comptime __fnb_kind(__fnb_T) == .string) {
                    __fnb_args[__fnb_i] = __fnb_bytes;
                } else {
                    __fnb_args[__fnb_i] = __fnb_parseArg(__fnb_T, __fnb_arena, __fnb_bytes) catch |__fnb_err| {
                        if (__fnb_err == error.NotExact) {
                            __fnb_host.bad_arg(@intCast(@intFromPtr(__fnb_detail.ptr)), @intCast(__fnb_detail.len));
                        } else __fnb_reportError("an argument does not fit its type: ", __fnb_err);
                        return __fnb_zero(__fnb_R);
                    };
                }
            },
        }
    }

    const __fnb_raw = @call(.auto, __fnb_f, __fnb_args);
    const __fnb_value = switch (@typeInfo(@TypeOf(__fnb_raw))) {
        .error_union => __fnb_raw catch |__fnb_err| {
            __fnb_reportError("", __fnb_err);
            return __fnb_zero(__fnb_R);
        },
        else => __fnb_raw,
    };

    const __fnb_P = __fnb_Payload(__fnb_F);
    if (__fnb_R == void) return;
    switch (comptime __fnb_kind(__fnb_P)) {
        .scalar => return __fnb_value,
        .string => return __fnb_packSlice(__fnb_value),
        .array => return __fnb_packSlice(__fnb_std.mem.sliceAsBytes(__fnb_value)),
        .json => {
            const __fnb_out = __fnb_std.json.Stringify.valueAlloc(__fnb_arena, __fnb_Result(@TypeOf(__fnb_value)){ .value = &__fnb_value, .arena = __fnb_arena }, .{}) catch |__fnb_err| {
                __fnb_reportError("", __fnb_err);
                return 0;
            };
            return __fnb_packSlice(__fnb_out);
        },
        .allocator => unreachable,
    }
}

/// One concrete `callconv(.c)` function per wasm arity; param types are
/// computed at comptime from the user function's signature.
fn __fnb_Wrapper(comptime __fnb_f: anytype) type {
    const __fnb_P = __fnb_wasmParams(@TypeOf(__fnb_f));
    const __fnb_R = __fnb_WasmRet(@TypeOf(__fnb_f));
    return switch (__fnb_P.len) {
        0 => struct {
            fn __fnb_w() callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{});
            }
        },
        1 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{__fnb_a0});
            }
        },
        2 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1 });
            }
        },
        3 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2 });
            }
        },
        4 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2], __fnb_a3: __fnb_P[3]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2, __fnb_a3 });
            }
        },
        5 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2], __fnb_a3: __fnb_P[3], __fnb_a4: __fnb_P[4]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2, __fnb_a3, __fnb_a4 });
            }
        },
        6 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2], __fnb_a3: __fnb_P[3], __fnb_a4: __fnb_P[4], __fnb_a5: __fnb_P[5]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2, __fnb_a3, __fnb_a4, __fnb_a5 });
            }
        },
        7 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2], __fnb_a3: __fnb_P[3], __fnb_a4: __fnb_P[4], __fnb_a5: __fnb_P[5], __fnb_a6: __fnb_P[6]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2, __fnb_a3, __fnb_a4, __fnb_a5, __fnb_a6 });
            }
        },
        8 => struct {
            fn __fnb_w(__fnb_a0: __fnb_P[0], __fnb_a1: __fnb_P[1], __fnb_a2: __fnb_P[2], __fnb_a3: __fnb_P[3], __fnb_a4: __fnb_P[4], __fnb_a5: __fnb_P[5], __fnb_a6: __fnb_P[6], __fnb_a7: __fnb_P[7]) callconv(.c) __fnb_R {
                return __fnb_invoke(__fnb_f, .{ __fnb_a0, __fnb_a1, __fnb_a2, __fnb_a3, __fnb_a4, __fnb_a5, __fnb_a6, __fnb_a7 });
            }
        },
        else => @compileError("fnb: too many wasm-level parameters (max 8)"),
    };
}

fn __fnb_export(comptime __fnb_f: anytype, comptime __fnb_name: []const u8) void {
    @export(&__fnb_Wrapper(__fnb_f).__fnb_w, .{ .name = __fnb_name });
}

