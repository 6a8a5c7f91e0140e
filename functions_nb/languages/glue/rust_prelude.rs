// functions-nb prelude for Rust cells, compiled before the cell (see languages/rust.py):
// console macros, panic and allocation-failure reporting, guest-memory helpers.
// Written to compile in every edition a deploy can choose (2015 to 2024).
#[link(wasm_import_module = "fnb")]
unsafe extern "C" {
    fn log(level: i32, ptr: *const u8, len: usize);
    fn fail(ptr: *const u8, len: usize);
    fn panic(ptr: *const u8, len: usize);
    fn oom(size: usize);
    fn bad_arg(ptr: *const u8, len: usize);
}
pub fn __log(level: i32, s: &str) { unsafe { log(level, s.as_ptr(), s.len()) } }
pub fn __fail(s: &str) { unsafe { fail(s.as_ptr(), s.len()) } }
pub fn __bad_arg(s: &str) -> ! { unsafe { bad_arg(s.as_ptr(), s.len()); core::arch::wasm32::unreachable() } }
macro_rules! println { () => { $crate::fnb_prelude::__log(1, "") }; ($($t:tt)*) => { $crate::fnb_prelude::__log(1, &format!($($t)*)) } }
macro_rules! print { ($($t:tt)*) => { $crate::fnb_prelude::__log(-1, &format!($($t)*)) } }
macro_rules! eprintln { () => { $crate::fnb_prelude::__log(4, "") }; ($($t:tt)*) => { $crate::fnb_prelude::__log(4, &format!($($t)*)) } }
macro_rules! eprint { ($($t:tt)*) => { $crate::fnb_prelude::__log(-4, &format!($($t)*)) } }
macro_rules! dbg { ($e:expr) => { match $e { tmp => { $crate::fnb_prelude::__log(0, &format!("[{}:{}] {} = {:?}", file!(), line!(), stringify!($e), &tmp)); tmp } } } }

struct FnbAlloc;
unsafe impl std::alloc::GlobalAlloc for FnbAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        unsafe { let p = std::alloc::System.alloc(l); if p.is_null() { oom(l.size()) } p } }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        unsafe { let p = std::alloc::System.alloc_zeroed(l); if p.is_null() { oom(l.size()) } p } }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) { unsafe { std::alloc::System.dealloc(p, l) } }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        unsafe { let q = std::alloc::System.realloc(p, l, n); if q.is_null() { oom(n) } q } }
}
#[global_allocator]
static FNB_ALLOC: FnbAlloc = FnbAlloc;

#[unsafe(export_name = "__fnb_init")]
pub extern "C" fn __fnb_init() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() { s.to_string() }
            else if let Some(s) = info.payload().downcast_ref::<String>() { s.clone() }
            else { String::from("panic") };
        let msg = if msg.starts_with("attempt to") && msg.ends_with("with overflow") {
            format!("{} (integer overflow: in wasm32 `usize` and `isize` are 32 bits wide, at most \
                     4294967295 and 2147483647, where native 64-bit code has room; use u64 or i64 \
                     for values that large)", msg)
        } else { msg };
        let full = match info.location() {
            Some(l) => format!("panicked at {}:{}:{}: {}", l.file(), l.line(), l.column(), msg),
            None => format!("panicked: {}", msg),
        };
        unsafe { panic(full.as_ptr(), full.len()) }
    }));
}
// Guest memory the host writes arguments into and reads results from: 8-byte aligned, so
// numeric arrays can be borrowed in place.
#[unsafe(export_name = "__fnb_alloc")]
pub extern "C" fn __fnb_alloc(len: usize) -> *mut u8 {
    if len == 0 { return 8 as *mut u8 }
    unsafe { std::alloc::alloc(std::alloc::Layout::from_size_align_unchecked(len, 8)) } }
#[unsafe(export_name = "__fnb_free")]
pub extern "C" fn __fnb_free(ptr: *mut u8, len: usize) {
    if len != 0 { unsafe { std::alloc::dealloc(ptr, std::alloc::Layout::from_size_align_unchecked(len, 8)) } } }
/// An argument buffer, freed when the entry wrapper returns.
pub struct ArgBuf(pub *mut u8, pub usize);
impl Drop for ArgBuf { fn drop(&mut self) { __fnb_free(self.0, self.1) } }
pub unsafe fn arg_slice<T>(ptr: *mut u8, n: usize) -> &'static [T] {
    if n == 0 { &[] } else { unsafe { std::slice::from_raw_parts(ptr as *const T, n) } } }
pub unsafe fn arg_str(ptr: *mut u8, len: usize) -> &'static str { unsafe { std::str::from_utf8_unchecked(arg_slice::<u8>(ptr, len)) } }
pub fn ret_bytes<B: AsRef<[u8]>>(b: B) -> i64 {
    let b = b.as_ref(); let len = b.len(); let p = __fnb_alloc(len);
    if p.is_null() { return 0 }
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, len) }
    (((p as u64) << 32) | len as u64) as i64 }
pub fn ret_str<S: AsRef<str>>(s: S) -> i64 { ret_bytes(s.as_ref().as_bytes()) }
pub fn ret_array<T: Copy, V: AsRef<[T]>>(v: V) -> i64 {
    let v = v.as_ref();
    ret_bytes(unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }) }
