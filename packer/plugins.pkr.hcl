# Plugin requirements for Packer >= 1.7 (`packer init packer/`, then build the
# directory: `packer build -only=amazon-ebs.debian12 packer/`).
#
# Kept apart from edgecert.pkr.hcl because Debian 12's Packer 1.6.6, which CI
# uses offline, cannot parse this block; CI validates edgecert.pkr.hcl alone.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      version = "~> 1.8"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
