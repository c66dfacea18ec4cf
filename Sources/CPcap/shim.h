#ifndef VTPBENCH_CPCAP_SHIM_H
#define VTPBENCH_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
