/* Raw UDP one-way blaster: the ceiling under any UDP transport on a path.
 * Sprays datagrams (optionally UDP GSO super-datagrams) from NPORTS source
 * ports to one destination; the receiver uses recvmmsg (+ UDP_GRO) and
 * prints the goodput it saw.  No reliability, no congestion control.
 * Build: gcc -O2 -o udp_blast bench/udp_blast.c
 * Run:   udp_blast r IP PORT SECONDS [gro]        (receiver)
 *        udp_blast s IP PORT SECONDS PAYLOAD SEGS NPORTS  (sender; SEGS=1: no GSO) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc, char **argv)
{
	if (argc < 5) { fprintf(stderr, "see the comment at the top\n"); return 2; }
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[3]));
	inet_pton(AF_INET, argv[2], &a.sin_addr);
	double secs = atof(argv[4]);
	int big = 16 << 20;
	if (argv[1][0] == 'r') {
		int s = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
		setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
		if (argc > 5) setsockopt(s, IPPROTO_UDP, UDP_GRO, &one, sizeof one);
		struct timeval tv = {0, 100000}; /* recvmmsg's own timeout does not bound a wait */
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (bind(s, (void *)&a, sizeof a)) { perror("bind"); return 1; }
		enum { B = 32, SZ = 65536 };
		static char buf[B][SZ]; struct mmsghdr m[B]; struct iovec io[B];
		for (int i = 0; i < B; i++) { io[i].iov_base = buf[i]; io[i].iov_len = SZ;
			memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &io[i]; m[i].msg_hdr.msg_iovlen = 1; }
		double t0 = 0, t1 = 0; unsigned long bytes = 0, calls = 0, dgrams = 0;
		for (;;) {
			int n = recvmmsg(s, m, B, MSG_WAITFORONE, NULL);
			double t = now();
			if (n <= 0) { if (t0 && t - t1 > 0.5) break; continue; }
			if (!t0) t0 = t;
			t1 = t; calls++; dgrams += n;
			for (int i = 0; i < n; i++) bytes += m[i].msg_len;
			if (t - t0 > secs + 1) break;
		}
		printf("recv %.2f Gbit/s over %.2f s (%lu datagrams, %lu calls)\n",
		       bytes * 8 / (t1 - t0) / 1e9, t1 - t0, dgrams, calls);
		return 0;
	}
	int pay = atoi(argv[5]), segs = atoi(argv[6]), np = atoi(argv[7]);
	int fds[256];
	for (int i = 0; i < np; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
		setsockopt(fds[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
		if (segs > 1) { int g = pay; setsockopt(fds[i], IPPROTO_UDP, UDP_SEGMENT, &g, sizeof g); }
	}
	static char data[65536]; size_t len = (size_t)pay * segs; if (len > 65000) len = 65000 / pay * pay;
	double t0 = now(); unsigned long bytes = 0; int k = 0;
	while (now() - t0 < secs) {
		ssize_t r = sendto(fds[k], data, len, 0, (void *)&a, sizeof a);
		if (r > 0) bytes += r;
		k = (k + 1) % np;
	}
	printf("sent %.2f Gbit/s\n", bytes * 8 / (now() - t0) / 1e9);
	return 0;
}
