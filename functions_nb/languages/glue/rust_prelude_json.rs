// JSON helpers (serde_json), added to the prelude when a signature needs them.
pub unsafe fn take_json<T: serde::de::DeserializeOwned>(arg: &str, ptr: *mut u8, len: usize) -> T {
    match serde_json::from_slice(arg_slice::<u8>(ptr, len)) {
        Ok(v) => v,
        Err(e) => __bad_arg(&format!("argument '{}' does not fit its type {}: {}", arg, std::any::type_name::<T>(), e)),
    }
}
pub fn ret_json<T: serde::Serialize>(v: &T) -> i64 {
    match serde_json::to_vec(v) { Ok(b) => ret_bytes(b), Err(e) => { __fail(&format!("result is not JSON-serializable: {}", e)); 0 } }
}
/// A JSON argument whose type borrows (`&[&str]`): it borrows from the argument's buffer,
/// which lives until the wrapper returns.
pub unsafe fn take_json_borrowed<'de, T: serde::Deserialize<'de>>(arg: &str, ptr: *mut u8, len: usize) -> T {
    let bytes: &'de [u8] = arg_slice::<u8>(ptr, len);
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => __bad_arg(&format!("argument '{}' does not fit its type {}: {}", arg, std::any::type_name::<T>(), e)),
    }
}
