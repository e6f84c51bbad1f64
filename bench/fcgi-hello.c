/* The floor of any FastCGI application: libfcgi, N threads, one fixed JSON answer.
 * bench/run.sh compiles it and runs it with the same processes x threads as ryze-events.
 * Usage: fcgi-hello [THREADS]   (the listen socket is on fd 0, from spawn-fcgi) */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char response[] =
    "Status: 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 123\r\n"
    "\r\n"
    "{\"success\":true,\"message\":\"WebSocket configuration retrieved\",\"websocket\":{\"enabled\":true,\"events\":[],\"mediaBase64\":false}}";

static void *serve(void *unused) {
    FCGX_Request request;
    (void)unused;
    FCGX_InitRequest(&request, 0, 0);
    while (FCGX_Accept_r(&request) >= 0) {
        FCGX_PutStr(response, sizeof(response) - 1, request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    pthread_t *ids = calloc((size_t)threads, sizeof(pthread_t));
    FCGX_Init();
    for (int i = 1; i < threads; i++) pthread_create(&ids[i], NULL, serve, NULL);
    serve(NULL);
    return 0;
}
