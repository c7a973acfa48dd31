namespace Consort.Training.Tests;
