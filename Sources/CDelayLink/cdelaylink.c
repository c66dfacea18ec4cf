#define _GNU_SOURCE
#include "cdelaylink.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int vtp_tun_open(const char *requested_name, int vnet_hdr, char *actual_name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    if (requested_name) strncpy(ifr.ifr_name, requested_name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(fd); return -e; }
    if (vnet_hdr) {
        int size = VTP_VNET_HDR_LEN;
        if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) { int e = errno; close(fd); return -e; }
        /* Advertise checksum + TSO so the stack hands us whole GSO super-packets. */
        unsigned long offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETOFFLOAD, offload) < 0) { int e = errno; close(fd); return -e; }
    }
    if (actual_name) { memcpy(actual_name, ifr.ifr_name, IFNAMSIZ); actual_name[IFNAMSIZ - 1] = 0; }
    return fd;
}

int vtp_epoll_create(void) { int fd = epoll_create1(EPOLL_CLOEXEC); return fd < 0 ? -errno : fd; }

int vtp_epoll_add(int epfd, int fd, uint64_t tag) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int vtp_epoll_wait(int epfd, uint64_t *tags, int max, int timeout_ms) {
    struct epoll_event evs[16];
    if (max > 16) max = 16;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) tags[i] = evs[i].data.u64;
    return n;
}

int vtp_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int vtp_timerfd_arm_abs(int fd, int64_t when_ns) {
    struct itimerspec spec;
    memset(&spec, 0, sizeof spec);
    if (when_ns > 0) {
        spec.it_value.tv_sec = when_ns / 1000000000LL;
        spec.it_value.tv_nsec = when_ns % 1000000000LL;
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    }
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) < 0 ? -errno : 0;
}

int vtp_timerfd_drain(int fd) {
    uint64_t expirations;
    ssize_t n = read(fd, &expirations, sizeof expirations);
    if (n < 0 && errno != EAGAIN) return -errno;
    return 0;
}

int64_t vtp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t vtp_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int vtp_set_sched_fifo(int priority) {
    struct sched_param param;
    memset(&param, 0, sizeof param);
    param.sched_priority = priority;
    return sched_setscheduler(0, SCHED_FIFO, &param) < 0 ? -errno : 0;
}

int vtp_set_timer_slack_ns(unsigned long ns) { return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) < 0 ? -errno : 0; }

ssize_t vtp_read(int fd, void *buf, size_t len) { ssize_t n = read(fd, buf, len); return n < 0 ? -errno : n; }
ssize_t vtp_write(int fd, const void *buf, size_t len) { ssize_t n = write(fd, buf, len); return n < 0 ? -errno : n; }
int vtp_close(int fd) { return close(fd) < 0 ? -errno : 0; }
int vtp_errno(void) { return errno; }
