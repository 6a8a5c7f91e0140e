// functions-nb prelude for Rust cells, compiled before the cell (see languages/rust.py):
// console macros, panic and allocation-failure reporting, guest-memory helpers.
#[link(wasm_import_module = "fnb")]
extern "C" {
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
        let p = std::alloc::System.alloc(l); if p.is_null() { oom(l.size()) } p }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        let p = std::alloc::System.alloc_zeroed(l); if p.is_null() { oom(l.size()) } p }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) { std::alloc::System.dealloc(p, l) }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        let q = std::alloc::System.realloc(p, l, n); if q.is_null() { oom(n) } q }
}
#[global_allocator]
static FNB_ALLOC: FnbAlloc = FnbAlloc;

#[export_name = "__fnb_init"]
pub extern "C" fn __fnb_init() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() { s.to_string() }
            else if let Some(s) = info.payload().downcast_ref::<String>() { s.clone() }
            else { String::from("panic") };
        let full = match info.location() {
            Some(l) => format!("panicked at {}:{}:{}: {}", l.file(), l.line(), l.column(), msg),
            None => format!("panicked: {}", msg),
        };
        unsafe { panic(full.as_ptr(), full.len()) }
    }));
}
#[export_name = "__fnb_alloc"]
pub extern "C" fn __fnb_alloc(len: usize) -> *mut u8 {
    let mut v = Vec::<u8>::with_capacity(len); let p = v.as_mut_ptr(); std::mem::forget(v); p }
#[export_name = "__fnb_free"]
pub extern "C" fn __fnb_free(ptr: *mut u8, len: usize) {
    unsafe { drop(Vec::from_raw_parts(ptr, len, len)) } }
pub unsafe fn take_bytes(ptr: *mut u8, len: usize) -> Vec<u8> { Vec::from_raw_parts(ptr, len, len) }
pub unsafe fn take_string(ptr: *mut u8, len: usize) -> String { String::from_utf8_unchecked(take_bytes(ptr, len)) }
pub fn ret_bytes<B: AsRef<[u8]>>(b: B) -> i64 {
    let v: Box<[u8]> = b.as_ref().to_vec().into_boxed_slice();
    let len = v.len(); let ptr = Box::into_raw(v) as *mut u8 as usize;
    (((ptr as u64) << 32) | len as u64) as i64 }
pub fn ret_str<S: AsRef<str>>(s: S) -> i64 { ret_bytes(s.as_ref().as_bytes()) }
