/* Raw UDP busy-polling ping-pong (the floor under any UDP transport here).
 * Build: gcc -O2 -o udp_pingpong bench/udp_pingpong.c
 * Run:   ./udp_pingpong s IP PORT &  ./udp_pingpong c IP PORT 20000 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static long ns(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
static int cmp(const void*a,const void*b){long x=*(long*)a,y=*(long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ /* server: udppp s IP PORT ; client: udppp c IP PORT N */
  int s=socket(AF_INET,SOCK_DGRAM,0); struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(atoi(argv[3])); inet_pton(AF_INET,argv[2],&a.sin_addr);
  char buf[64]={0}; struct sockaddr_in f; socklen_t fl=sizeof f;
  if(argv[1][0]=='s'){ bind(s,(void*)&a,sizeof a); for(;;){ int n=recvfrom(s,buf,64,MSG_DONTWAIT,(void*)&f,&fl); if(n>0) sendto(s,buf,n,0,(void*)&f,fl);} }
  int N=atoi(argv[4]); long*r=malloc(N*sizeof(long));
  for(int i=0;i<N;i++){ long t=ns(); sendto(s,buf,64,0,(void*)&a,sizeof a); while(recv(s,buf,64,MSG_DONTWAIT)<=0); r[i]=ns()-t; }
  qsort(r,N,sizeof(long),cmp); printf("raw UDP busy-poll RTT p50 %.1f us p99 %.1f us\n", r[N/2]/1e3, r[N*99/100]/1e3); return 0; }
