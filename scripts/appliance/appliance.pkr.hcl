# appliance.pkr.hcl: the appliance test's stand-in for the EC2 builder, a
# Debian 12 systemd-nspawn container reached over SSH. Not part of packer/,
# so `packer build packer/` can never provision the operator's own machine.
#
# packer-check.sh puts this file next to a copy of packer/edgecert.pkr.hcl
# whose build names source.null.appliance instead of the amazon source: the
# test then runs the AMI build's own provisioner blocks, unchanged, clean-up
# step included.

variable "ssh_host" {
  type    = string
  default = "127.0.0.1"
}

variable "ssh_port" {
  type    = number
  default = 2222
}

variable "ssh_username" {
  type    = string
  default = "root"
}

variable "ssh_private_key_file" {
  type = string
}

source "null" "appliance" {
  communicator         = "ssh"
  ssh_host             = var.ssh_host
  ssh_port             = var.ssh_port
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "2m"
}
