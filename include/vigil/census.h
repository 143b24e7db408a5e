/* Socket-state census (NETLINK_SOCK_DIAG). Filled in by the census work. */
#ifndef VIGIL_CENSUS_H
#define VIGIL_CENSUS_H
#endif
