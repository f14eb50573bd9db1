/**
 * Imported first by the worker: every libvirt call runs on libuv's thread pool (4 threads by default,
 * shared with file and DNS work), so a host running many operations at once needs more. Must be set
 * before the pool is first used.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
