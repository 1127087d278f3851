"""Record batches: conversion from client input, Avro datum encoding, dedup keys."""
