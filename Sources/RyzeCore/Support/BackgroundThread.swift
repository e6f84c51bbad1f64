#if canImport(Glibc)
import Glibc
#endif

/// A detached pthread for the store's background work. Request threads belong to the adapter;
/// this is for work no request should wait for.
enum BackgroundThread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed")
        pthread_detach(thread)
    }
}
