# edgecert appliance image: amazon-ebs.debian12 builds the AMI for amd64 or
# arm64 (Graviton) from the official Debian 12 release AMI, installs the
# edgecert Debian package built by `make release`, upgrades the base
# system, and cleans everything host-specific out in a last step (user-data
# writes /etc/edgecert/edgecert.env at launch; see systemd/user-data.example).
#
#   make release                                        # dist/edgecert_{amd64,arm64}.deb
#   packer init packer/
#   packer build -var version=$(git describe --tags --always) -var arch=arm64 packer/
#
# This directory holds no other build: `packer build packer/` only ever
# talks to EC2. The appliance test (scripts/appliance/) runs this file's
# build block against a systemd-nspawn container instead, through a copy in
# which the build's source is replaced by its own null source.
#
# Packer >= 1.7 with the amazon plugin (packer/plugins.pkr.hcl; `packer init
# packer/`) builds the whole directory. Debian 12's Packer 1.6.6 parses this
# file once the regions marked "packer>=1.7" are cut out, which is what
# scripts/appliance/packer-check.sh does for CI's offline validate. The file
# provisioners check their sources at validate time: run `make release` (or
# pass -var package=PATH) before `packer validate`.

variable "version" {
  type        = string
  default     = "dev"
  description = "edgecert version; goes into the AMI name (characters AMI names do not allow become -) and tags."
}

variable "arch" {
  type        = string
  default     = "amd64"
  description = "Architecture of the AMI: amd64 or arm64 (Graviton). Picks the source AMI, the default instance type and the default package."
  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "The arch value must be amd64 or arm64."
  }
}

variable "package" {
  type        = string
  default     = ""
  description = "The edgecert Debian package for var.arch. Default: dist/edgecert_<arch>.deb at the repository root (make release)."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "source_ami_owner" {
  type        = string
  default     = "136693071363"
  description = "Account publishing the Debian 12 AMIs: Debian's in the aws partition; look up Debian's account for other partitions (aws-cn, aws-us-gov)."
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Builder instance type. Default: t3.micro for amd64, t4g.micro for arm64."
}

variable "vpc_id" {
  type        = string
  default     = ""
  description = "VPC of the builder instance. Empty: the subnet's VPC, or the account's default VPC."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the builder instance. Empty: subnet_filter, or a default subnet of the default VPC."
}

variable "subnet_filter" {
  type        = map(string)
  default     = {}
  description = "EC2 DescribeSubnets filters picking the builder's subnet when subnet_id is empty (the one with the most free addresses), e.g. { \"tag:Name\" = \"build-*\" }."
}

variable "associate_public_ip_address" {
  type        = bool
  default     = null
  description = "Give the builder a public IP address. Unset: the subnet's setting. false needs a way in: ssh_interface = \"private_ip\" from inside the VPC."
}

variable "ssh_interface" {
  type        = string
  default     = "public_ip"
  description = "How Packer reaches the builder: public_ip, private_ip (from inside the VPC) or public_dns/private_dns."
}

variable "ssh_source_cidrs" {
  type        = list(string)
  default     = []
  description = "CIDRs the temporary security group admits on 22/tcp. Empty: only this machine's public address (Packer asks checkip.amazonaws.com)."
}

variable "volume_size" {
  type        = number
  default     = 8
  description = "Root volume size in GiB."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume (and so the AMI snapshot). Empty: the account's default EBS key."
}

variable "upgrade" {
  type        = bool
  default     = true
  description = "Upgrade the base image's packages during the build (needs the builder to reach the Debian mirrors)."
}

locals {
  package  = var.package != "" ? var.package : "${path.root}/../dist/edgecert_${var.arch}.deb"
  ami_arch = var.arch == "arm64" ? "arm64" : "x86_64"
  # Release images only: Debian names them debian-12-<arch>-<YYYYMMDD>-<build>;
  # daily builds (debian-12-<arch>-daily-...) and backports images do not
  # match.
  source_ami_name = "debian-12-${var.arch}-20*"
  instance_type   = var.instance_type != "" ? var.instance_type : (var.arch == "arm64" ? "t4g.micro" : "t3.micro")
  stamp           = formatdate("YYYYMMDDhhmmss", timestamp())
  # AMI names allow a-z A-Z 0-9 ( ) [ ] space . / - ' @ _ (3-128 characters).
  name_version = regex_replace(var.version, "[^a-zA-Z0-9()\\[\\] ./'@_-]", "-")
  tags = {
    Name         = "edgecert-${var.version}-${var.arch}"
    Application  = "edgecert"
    Version      = var.version
    Architecture = var.arch
    BaseOS       = "debian-12"
  }
}

source "amazon-ebs" "debian12" {
  region          = var.region
  instance_type   = local.instance_type
  ami_name        = "edgecert-${local.name_version}-${var.arch}-${local.stamp}"
  ami_description = "edgecert ${local.name_version} on Debian 12 (${var.arch})"

  source_ami_filter {
    filters = {
      name                = local.source_ami_name
      architecture        = local.ami_arch
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }
  ssh_username  = "admin"
  ssh_interface = var.ssh_interface

  vpc_id                      = var.vpc_id
  subnet_id                   = var.subnet_id
  associate_public_ip_address = var.associate_public_ip_address
  subnet_filter {
    filters   = var.subnet_filter
    most_free = true
  }

  # The temporary security group admits SSH from ssh_source_cidrs, or else
  # from this machine's public address only, never from 0.0.0.0/0.
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  # BEGIN packer>=1.7
  temporary_security_group_source_public_ip = length(var.ssh_source_cidrs) == 0
  # END packer>=1.7

  # IMDSv2 only: on the builder instance (metadata_options) and as the
  # default of every instance launched from the AMI (imds_support).
  # Packer 1.6.6 knows neither; scripts/appliance/packer-check.sh cuts this
  # marked region out before validating with it.
  # BEGIN packer>=1.7
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"
  # END packer>=1.7

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    iops                  = 3000 # gp3 baseline
    throughput            = 125  # MiB/s, gp3 baseline
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }
  # The root volume is encrypted from launch on, so the snapshot and the AMI
  # are too (no encrypt_boot re-encryption copy needed).

  tags            = local.tags
  snapshot_tags   = local.tags
  run_tags        = merge(local.tags, { Name = "packer-edgecert-${var.version}-${var.arch}" })
  run_volume_tags = merge(local.tags, { Name = "packer-edgecert-${var.version}-${var.arch}" })
}

build {
  sources = ["source.amazon-ebs.debian12"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/edgecert-stage"]
  }

  provisioner "file" {
    source      = local.package
    destination = "/tmp/edgecert-stage/edgecert.deb"
  }

  provisioner "shell" {
    script           = "${path.root}/upgrade.sh"
    environment_vars = ["EDGECERT_UPGRADE=${var.upgrade}"]
    execute_command  = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }}"
  }

  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["EDGECERT_STAGE=/tmp/edgecert-stage", "EDGECERT_ARCH=${var.arch}"]
    execute_command  = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }}"
  }

  # Last: nothing of the build instance stays in the image.
  provisioner "shell" {
    script          = "${path.root}/cleanup.sh"
    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }}"
  }
}
